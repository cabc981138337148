"""The HTTP routes, one :class:`fastapi.APIRouter` per concern.

- ``health``: liveness, readiness and the start-up probe;
- ``metadata``: v2 server and model metadata, and model readiness;
- ``inference``: v2 inference (JSON tensors or the binary tensor data extension);
- ``predict``: the simple JSON ``/predict`` route;
- ``operations``: Prometheus metrics.

Routes find the :class:`service.runtime.ServiceRuntime` on ``request.app.state.runtime`` (see
``service.api.requests.runtime_of``); ``service.app.create_app`` puts it there and includes the
routers. ``requests`` and ``docs`` hold what several routers share.
"""

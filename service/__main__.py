"""Entry point: ``python -m service`` serves the model over HTTP with uvicorn.

Reads and validates the settings, reads the API key from Secrets Manager when one is configured,
then serves until SIGTERM. From SIGTERM on, readiness is false and every response carries
``Connection: close``; for the drain period (``DRAIN_PERIOD_SECONDS``, default
``SHUTDOWN.drain_period_seconds``) the listener and idle keep-alive connections stay open, so a
request already on its way over a kept-alive connection is answered rather than cut off. Then the
listener and idle connections close, in-flight requests (queued batches included) finish within
``SHUTDOWN.drain_seconds``, and the process exits 0. Exit 1 means the model failed to load, 2 a
bad setting or an unreadable API key, 3 that the port could not be listened on; the reason is
always in the last log lines.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import sys
from types import FrameType

# Only light modules here: torch, FastAPI and uvicorn are imported inside main(), with the cyclic
# GC off, and the model loads on its own thread while the web stack is imported (service.preload).
from service.contract import BIND_HOST, DEFAULT_LOG_LEVEL, SHUTDOWN
from service.json_logging import FIELDS, configure_logging
from service.preload import ModelPreload
from service.process_clock import seconds_since_process_start
from service.settings import Settings, SettingsError, load_settings

logger = logging.getLogger("service")

#: GIL switch interval of the server process: short turns between the event loop and the
#: inference worker keep batching from adding 5 ms per handoff to the tail (see service.batching).
GIL_SWITCH_INTERVAL_S = 0.0005

EXIT_MODEL_FAILED = 1
EXIT_BAD_CONFIG = 2
EXIT_CANNOT_LISTEN = 3


def _after_shutdown(sig: int, frame: FrameType | None) -> None:
    # uvicorn re-raises the signal it handled once it has shut down gracefully; answering it
    # here (instead of the default action, death by signal) lets the process exit 0.
    return None


def main(argv: list[str] | None = None) -> int:
    """Run the server; returns the process exit code.

    The cyclic GC is off until the server has started (``DrainingServer.startup`` freezes what
    start-up built and turns it back on): importing torch, FastAPI and pydantic creates about
    200,000 objects that live as long as the process, and the GC would walk them again at every
    collection while they are being built, 10-15 % of start-up's CPU time here. The few thousand
    unreachable objects start-up leaves are frozen with the rest instead of collected (a full
    collection would cost 250 ms); the RSS at ready is the same either way (268 MB here).
    """
    gc.disable()
    try:
        return _main(argv)
    finally:
        gc.enable()


def _main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service", description=__doc__)
    parser.add_argument(
        "--host",
        default=BIND_HOST,
        help=f"address to listen on (default {BIND_HOST}; the port comes from PORT)",
    )
    args = parser.parse_args(argv)

    configure_logging(DEFAULT_LOG_LEVEL)
    try:
        settings = load_settings(os.environ)
    except SettingsError as exc:
        logger.error("%s", exc)
        return EXIT_BAD_CONFIG
    configure_logging(settings.log_level)
    # torch is imported here; the model then loads on its thread while this one imports the web
    # stack.
    preload = ModelPreload(settings)
    try:
        return _serve(args.host, settings, preload)
    finally:
        # Never let the interpreter exit while a load still runs in C++ (that aborts it).
        preload.wait()


def _serve(host: str, settings: Settings, preload: ModelPreload) -> int:
    import uvicorn

    from service.api_key import ApiKeyError, fetch_api_key
    from service.app import create_app, service_runtime
    from service.inference_protocol import protocol_for
    from service.server import DrainingServer

    logger.info(
        "web stack imported",
        extra={FIELDS: {"since_process_start_s": seconds_since_process_start()}},
    )
    api_key = None
    if settings.api_key_secret_arn is not None:
        try:
            api_key = fetch_api_key(settings.api_key_secret_arn, settings.aws_region)
        except ApiKeyError as exc:
            logger.error("%s", exc)
            return EXIT_BAD_CONFIG
        logger.info("API key read from %s; inference routes need it", settings.api_key_secret_arn)

    server: DrainingServer | None = None

    def stop_after_load_failure() -> None:
        if server is not None:
            server.should_exit = True

    app = create_app(settings, api_key=api_key, loader=preload, on_fatal=stop_after_load_failure)
    runtime = service_runtime(app)
    config = uvicorn.Config(
        app,
        host=host,
        port=settings.port,
        # The inference routes are answered by the HTTP protocol itself, everything else by the
        # app over ASGI (service.inference_protocol).
        http=protocol_for(runtime),
        log_config=None,
        access_log=False,
        server_header=False,
        # No websocket routes: "auto" would import a websockets implementation at start-up.
        ws="none",
        timeout_graceful_shutdown=SHUTDOWN.drain_seconds,
    )
    server = DrainingServer(config, runtime, settings.drain_period_seconds)
    signal.signal(signal.SIGTERM, _after_shutdown)
    signal.signal(signal.SIGINT, _after_shutdown)
    # Only now: while the preload thread and this one both run Python, a short interval would
    # make them hand the GIL over every 0.5 ms.
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    try:
        server.run()
    except SystemExit:
        # uvicorn exits this way when it cannot listen; its own log line above says why.
        logger.error("could not serve on %s:%d (see the error above)", host, settings.port)
        return EXIT_CANNOT_LISTEN
    if runtime.load_error is not None:
        logger.error("exiting: the model failed to load: %s", runtime.load_error)
        return EXIT_MODEL_FAILED
    logger.info("server stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())

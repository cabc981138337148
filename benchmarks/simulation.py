"""A scaling simulation: load traces replayed against a model of the service on EKS GPU nodes.

Pure Python, deterministic for a seed, a few seconds for a simulated day. Time advances in
whole seconds; every control loop (HPA, KEDA, metrics scrapes, cluster-autoscaler, Karpenter)
and every lifecycle event (node ready, image pulled, pod ready, node removed) happens at its own
second, as in the cluster. Between events, requests are a fluid FIFO queue:

- **Arrivals**: Poisson draws from the trace's rate (:mod:`benchmarks.sim_traces`).
- **Pods**: each ready pod serves like the benchmarked pod (:mod:`benchmarks.service_curve`):
  below saturation the offered rate settles at the concurrency where the pod's measured
  throughput equals it, with the measured p50/p99 at that concurrency; above saturation the
  excess queues (FIFO) and each request's wait is added to the saturated latency. The Service
  spreads requests evenly over ready pods. With no pod ready, requests are held at the front
  (KEDA's HTTP add-on interceptor, or a client retrying) until one is.
- **Latency distribution**: a request served at (p50, p99) exceeds ``x`` ms with probability
  0.5 at p50, 0.01 at p99, exponential in between and beyond (a log-linear tail through the
  two measured quantiles).
- **Pods start** when bound to a GPU node: image pull if the node never ran the image, then the
  container's cold start. **Nodes** (one GPU pod each) come from cluster-autoscaler or
  Karpenter with the published times in :mod:`benchmarks.sim_platform`, and are billed per
  second from launch to removal (60 s minimum).
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Final, Literal

from benchmarks import scaling_targets as st
from benchmarks import sim_platform as plat
from benchmarks.service_curve import ServiceCurve
from benchmarks.sim_traces import Trace

Signal = Literal["none", "cpu", "inflight", "inflight+rate"]
ProvisionerName = Literal["cluster-autoscaler", "karpenter"]
PROVISIONERS: Final[tuple[ProvisionerName, ...]] = ("cluster-autoscaler", "karpenter")
#: Sample the timeline (for the plot) every this many seconds.
TIMELINE_STEP_S: Final = 60
#: Window of the request-rate query (``rate(inference_http_requests_total[1m])``).
RATE_WINDOW_S: Final = 60
#: A client gives up on a request after this long (and it counts as an SLO violation): our
#: choice, the same 30 s the service allows a slow request body (service/app.py BODY_TIMEOUT_S).
CLIENT_TIMEOUT_S: Final = 30


@dataclass(frozen=True)
class Policy:
    """A pod autoscaling policy: the signal it reads and its bounds."""

    name: str
    signal: Signal
    min_replicas: int
    max_replicas: int
    scale_to_zero: bool = False
    #: inflight: the per-pod target (requests in flight).
    inflight_target: float = 0.0
    #: inflight+rate: the per-pod request-rate target (answered req/s), a second trigger.
    rate_target: float = 0.0
    #: cpu: the container's CPU request (cores) and the target utilisation of it.
    cpu_request_cores: float = 0.5
    cpu_target_utilization: float = 0.7

    def __post_init__(self) -> None:
        if not 0 <= self.min_replicas <= self.max_replicas or self.max_replicas < 1:
            raise ValueError(
                f"policy {self.name}: need 0 <= min_replicas ({self.min_replicas}) <= "
                f"max_replicas ({self.max_replicas}) and max_replicas >= 1"
            )
        if self.min_replicas == 0 and not self.scale_to_zero:
            raise ValueError(f"policy {self.name}: min_replicas 0 needs scale_to_zero")
        if self.signal.startswith("inflight") and self.inflight_target <= 0:
            raise ValueError(f"policy {self.name}: an in-flight policy needs a target > 0")
        if self.signal == "inflight+rate" and self.rate_target <= 0:
            raise ValueError(f"policy {self.name}: a request-rate trigger needs a target > 0")

    def target_per_pod(self) -> float:
        """The first signal's per-pod target (cores for CPU, requests for in-flight)."""
        if self.signal == "cpu":
            return self.cpu_request_cores * self.cpu_target_utilization
        return self.inflight_target


@dataclass(frozen=True)
class Platform:
    """Pod start and node provisioning as the simulation sees them."""

    provisioner: ProvisionerName
    image_pull_s: float
    container_start_s: float
    max_nodes: int
    node_scale_down_after_s: int = plat.KARPENTER_CONSOLIDATE_AFTER_S

    @property
    def node_ready_s(self) -> int:
        """Seconds from the provisioner's launch to a Ready GPU node."""
        if self.provisioner == "karpenter":
            return plat.KARPENTER_NODE_READY_S
        return plat.CA_NODE_READY_S


@dataclass(eq=False)
class _Node:
    launched_at: int
    ready_at: int
    has_image: bool = False
    pod: _Pod | None = None
    empty_since: int | None = None


@dataclass(eq=False)
class _Pod:
    created_at: int
    node: _Node | None = None
    ready_at: float | None = None
    ready: bool = False


@dataclass
class Result:
    """What one run of one policy on one trace cost and how it served."""

    trace: str
    policy: str
    provisioner: ProvisionerName
    slo_p99_ms: float
    requests: float
    slo_violations: float
    #: of which requests that arrived while no pod was ready (paid a start from zero)
    cold_requests: float
    cold_violations: float
    p99_ms: float
    #: longest time from a request arriving with no pod ready to the first pod ready, seconds
    #: (the cost of the first request after zero: node, image pull, container start)
    first_request_wait_s: float
    #: requests the client gave up on after CLIENT_TIMEOUT_S
    timed_out: float
    node_seconds: float
    peak_replicas: int
    #: how many times the Deployment's replica count changed (flapping shows here)
    replica_changes: int
    #: (t s, offered req/s, ready pods, nodes) every TIMELINE_STEP_S
    timeline: list[tuple[int, float, int, int]] = field(default_factory=list)

    @property
    def node_hours(self) -> float:
        """GPU node-hours billed."""
        return self.node_seconds / 3600

    @property
    def violation_share(self) -> float:
        """Share of requests slower than the SLO."""
        return self.slo_violations / self.requests if self.requests else 0.0

    def warm_violation_share(self) -> float:
        """Share of requests slower than the SLO, leaving out those that met no ready pod."""
        warm = self.requests - self.cold_requests
        return (self.slo_violations - self.cold_violations) / warm if warm else 0.0

    def cost_usd(self, instance_type: str, capacity: plat.CapacityType) -> float:
        """What the node-hours cost on that instance type and capacity type."""
        return self.node_hours * plat.PRICES[instance_type].per_hour(capacity)


def poisson_arrivals(rates: list[float], seed: int) -> list[int]:
    """Arrivals per second drawn from ``rates``; the same seed gives the same sequence."""
    rng = random.Random(seed)  # noqa: S311 - a simulation, not cryptography
    out = []
    for lam in rates:
        if lam <= 0:
            out.append(0)
        elif lam > 50:
            out.append(max(0, round(rng.gauss(lam, math.sqrt(lam)))))
        else:
            # Knuth's method: multiply uniforms until the product drops below e^-lambda.
            limit, k, prod = math.exp(-lam), 0, rng.random()
            while prod > limit:
                k += 1
                prod *= rng.random()
            out.append(k)
    return out


def _survival(x: float, p50: float, p99: float) -> float:
    """P(latency > x) for a request served at (p50, p99)."""
    if x <= 0.5 * p50:
        return 1.0
    if x < p50:
        return 1.0 - 0.5 * (x - 0.5 * p50) / (0.5 * p50)
    if p99 <= p50:
        return 0.0
    return 0.5 * math.pow(0.02, (x - p50) / (p99 - p50))


class _Latencies:
    """Requests grouped by the (p50, p99) they were served at."""

    def __init__(self) -> None:
        self.groups: dict[tuple[float, float], float] = {}
        self.cold: dict[tuple[float, float], float] = {}

    def add(self, p50: float, p99: float, count: float, cold: bool = False) -> None:
        key = (round(p50, 1), round(p99, 1))
        self.groups[key] = self.groups.get(key, 0.0) + count
        if cold:
            self.cold[key] = self.cold.get(key, 0.0) + count

    @staticmethod
    def _above(groups: dict[tuple[float, float], float], x: float) -> float:
        return sum(n * _survival(x, p50, p99) for (p50, p99), n in groups.items())

    def violations(self, slo_ms: float) -> tuple[float, float]:
        """(all, cold) requests slower than ``slo_ms``."""
        return self._above(self.groups, slo_ms), self._above(self.cold, slo_ms)

    def quantile(self, q: float) -> float:
        """The latency (ms) that a share ``1 - q`` of all requests exceed."""
        total = sum(self.groups.values())
        if total == 0:
            return 0.0
        lo, hi = 0.0, max(p99 for _, p99 in self.groups) * 4 + 1
        for _ in range(60):
            mid = (lo + hi) / 2
            if self._above(self.groups, mid) > (1 - q) * total:
                lo = mid
            else:
                hi = mid
        return hi


class Simulation:
    """One policy on one platform replaying one trace's arrivals."""

    def __init__(
        self,
        curve: ServiceCurve,
        policy: Policy,
        platform: Platform,
        arrivals: list[int],
        slo_p99_ms: float,
    ) -> None:
        self.curve, self.policy, self.platform = curve, policy, platform
        self.arrivals, self.slo = arrivals, slo_p99_ms
        self.nodes: list[_Node] = []
        self.pods: list[_Pod] = []
        self.queue: deque[list[float]] = deque()  # [arrival second, count, cold 0/1]
        self.lat = _Latencies()
        self._steady_cache: dict[tuple[int, int], tuple[float, float, float, float]] = {}
        self.node_seconds = 0.0
        self.cpu_window: deque[float] = deque(maxlen=plat.METRICS_SERVER_RESOLUTION_S)
        self.recent_arrivals: deque[int] = deque(maxlen=plat.SCRAPE_INTERVAL_S)
        self.served_window: deque[float] = deque(maxlen=RATE_WINDOW_S)
        self.inflight_sample = 0.0
        self.rate_sample = 0.0
        self.active_sample = False
        self.cpu_sample = 0.0
        self.down_history: deque[tuple[int, int]] = deque()
        self.last_scale_down = -(10**9)
        self.last_node_add = -(10**9)
        self.last_active = 0
        self.batch_start: int | None = None
        self.first_wait = 0.0
        self.cold_since: int | None = None
        self.timed_out = 0.0
        self.peak = 0
        self.replicas = self._initial_replicas(arrivals[0] if arrivals else 0)
        for _ in range(self.replicas):
            node = _Node(launched_at=0, ready_at=0, has_image=True)
            pod = _Pod(created_at=0, node=node, ready_at=0.0, ready=True)
            node.pod = pod
            self.nodes.append(node)
            self.pods.append(pod)

    # --- set-up ----------------------------------------------------------------------------

    def _initial_replicas(self, rate: float) -> int:
        """Start in the steady state the policy would hold for the trace's first rate."""
        pol = self.policy
        if pol.signal == "none":
            return pol.min_replicas
        if rate <= 0 and pol.scale_to_zero:
            return 0
        for n in range(max(1, pol.min_replicas), pol.max_replicas + 1):
            per_pod = rate / n
            if per_pod >= self.curve.max_throughput_rps:
                continue
            c = self.curve.concurrency_for_rate(per_pod)
            metric = self.curve.cpu_cores(per_pod, c) if pol.signal == "cpu" else c
            rate_ok = pol.signal != "inflight+rate" or per_pod <= pol.rate_target
            if metric <= pol.target_per_pod() and rate_ok:
                return n
        return pol.max_replicas

    # --- data plane ------------------------------------------------------------------------

    def _serve(self, t: int, arrived: int, ready: int) -> tuple[float, float, float]:
        """Serve one second with ``ready`` pods: (requests in flight, CPU cores, answered)."""
        self._time_out(t)
        if ready and self.cold_since is not None:
            self.first_wait = max(self.first_wait, t - self.cold_since)
            self.cold_since = None
        if ready == 0:
            if arrived:
                self.queue.append([float(t), float(arrived), 1.0])
                if self.cold_since is None:
                    self.cold_since = t
            return sum(item[1] for item in self.queue), 0.0, 0.0
        capacity = ready * self.curve.max_throughput_rps
        if not self.queue and arrived < capacity:
            c, p50, p99, cpu = self._steady(arrived, ready)
            if arrived:
                self.lat.add(p50, p99, arrived)
            return ready * c, ready * cpu, float(arrived)
        if arrived:
            self.queue.append([float(t), float(arrived), 0.0])
        budget = capacity
        c_max = self.curve.max_concurrency
        p50, p99 = self.curve.latency_ms(c_max)
        while self.queue and budget > 1e-9:
            item = self.queue[0]
            take = min(item[1], budget)
            wait_ms = (t - item[0]) * 1000.0
            self.lat.add(p50 + wait_ms, p99 + wait_ms, take, cold=item[2] > 0)
            budget -= take
            item[1] -= take
            if item[1] <= 1e-9:
                self.queue.popleft()
        served = capacity - budget
        backlog = sum(item[1] for item in self.queue)
        cpu = ready * self.curve.cpu_cores(served / ready, c_max)
        return ready * c_max + backlog, cpu, served

    def _steady(self, arrived: int, ready: int) -> tuple[float, float, float, float]:
        """(concurrency, p50, p99, CPU cores) per pod below saturation; memoised (hot path)."""
        key = (arrived, ready)
        hit = self._steady_cache.get(key)
        if hit is None:
            per_pod = arrived / ready
            c = self.curve.concurrency_for_rate(per_pod)
            p50, p99 = self.curve.latency_ms(c)
            hit = (c, p50, p99, self.curve.cpu_cores(per_pod, c))
            self._steady_cache[key] = hit
        return hit

    def _time_out(self, t: int) -> None:
        """Requests queued longer than the client timeout are given up (slow, and failed)."""
        while self.queue and t - self.queue[0][0] >= CLIENT_TIMEOUT_S:
            since, count, cold = self.queue.popleft()
            wait_ms = (t - since) * 1000.0
            self.lat.add(wait_ms, wait_ms, count, cold=cold > 0)
            self.timed_out += count

    # --- metrics ---------------------------------------------------------------------------

    def _observe(self, t: int, arrived: int, flow: tuple[float, float, float]) -> None:
        inflight, cpu, served = flow
        self.cpu_window.append(cpu)
        self.recent_arrivals.append(arrived)
        self.served_window.append(served)
        if t % plat.SCRAPE_INTERVAL_S == 0:
            self.inflight_sample = inflight
            self.rate_sample = sum(self.served_window) / len(self.served_window)
            self.active_sample = sum(self.recent_arrivals) > 0 or bool(self.queue)
        if t % plat.METRICS_SERVER_RESOLUTION_S == 0:
            self.cpu_sample = sum(self.cpu_window) / max(1, len(self.cpu_window))

    # --- pod autoscaling -------------------------------------------------------------------

    def _hpa(self, t: int) -> None:
        pol, current = self.policy, self.replicas
        if pol.signal == "none" or current == 0:
            return
        if pol.signal == "cpu":
            metrics = [(self.cpu_sample, pol.target_per_pod())]
        else:
            metrics = [(self.inflight_sample, pol.inflight_target)]
            if pol.signal == "inflight+rate":
                metrics.append((self.rate_sample, pol.rate_target))
        # With several metrics the HPA takes the largest recommendation.
        raw = max(
            current
            if abs(metric / (target * current) - 1) <= plat.HPA_TOLERANCE
            else math.ceil(metric / target)
            for metric, target in metrics
        )
        raw = min(max(raw, max(1, pol.min_replicas)), pol.max_replicas)
        window = st.SCALE_DOWN_STABILIZATION_S
        self.down_history.append((t, raw))
        while self.down_history and self.down_history[0][0] <= t - window:
            self.down_history.popleft()
        if raw > current:
            step = max(current * st.SCALE_UP_PERCENT // 100, st.SCALE_UP_PODS)
            self.replicas = min(raw, current + step)
        elif raw < current:
            stabilized = max(r for _, r in self.down_history)
            if stabilized < current and t - self.last_scale_down >= st.SCALE_DOWN_PERIOD_S:
                self.replicas = max(stabilized, current - st.SCALE_DOWN_PODS)
                self.last_scale_down = t

    def _keda(self, t: int) -> None:
        """KEDA's own loop: activation from zero and scale to zero after the cooldown."""
        if not self.policy.scale_to_zero or t % st.KEDA_POLLING_INTERVAL_S:
            return
        if self.active_sample:
            self.last_active = t
            if self.replicas == 0:
                self.replicas = 1
                self.down_history.clear()
        elif self.replicas > 0 and t - self.last_active >= st.KEDA_COOLDOWN_PERIOD_S:
            self.replicas = 0
            self.down_history.clear()

    # --- pods and nodes --------------------------------------------------------------------

    def _reconcile(self, t: int) -> None:
        """The ReplicaSet: create or delete pods (unbound first, then unready, then newest)."""
        while len(self.pods) < self.replicas:
            self.pods.append(_Pod(created_at=t))
        while len(self.pods) > self.replicas:
            victim = min(
                reversed(self.pods), key=lambda p: (p.node is not None, p.ready, -p.created_at)
            )
            self.pods.remove(victim)
            if victim.node is not None:
                victim.node.pod = None
                victim.node.empty_since = t

    def _schedule(self, t: int) -> None:
        free = [n for n in self.nodes if n.ready_at <= t and n.pod is None]
        for pod in self.pods:
            if pod.node is None and free:
                node = free.pop(0)
                pull = 0.0 if node.has_image else self.platform.image_pull_s
                node.has_image = True
                node.pod, node.empty_since = pod, None
                pod.node, pod.ready_at = node, t + pull + self.platform.container_start_s
            if not pod.ready and pod.ready_at is not None and t >= pod.ready_at:
                pod.ready = True

    def _provision(self, t: int) -> None:
        plf = self.platform
        if plf.provisioner == "cluster-autoscaler" and t % plat.CA_SCAN_INTERVAL_S:
            return
        unbound = sum(1 for p in self.pods if p.node is None)
        launching = sum(1 for n in self.nodes if n.ready_at > t) if unbound else 0
        wanted = min(unbound - launching, plf.max_nodes - len(self.nodes))
        if plf.provisioner == "cluster-autoscaler":
            if wanted <= 0:
                return
        else:
            if wanted <= 0:
                self.batch_start = None
                return
            if self.batch_start is None:
                self.batch_start = t
            if t - self.batch_start < plat.KARPENTER_BATCH_IDLE_S:
                return
            self.batch_start = None
        for _ in range(wanted):
            self.nodes.append(_Node(launched_at=t, ready_at=t + plf.node_ready_s))
        self.last_node_add = t

    def _remove_nodes(self, t: int) -> None:
        plf = self.platform
        if plf.provisioner == "cluster-autoscaler":
            if t % plat.CA_SCAN_INTERVAL_S:
                return
            if t - self.last_node_add < plat.CA_SCALE_DOWN_DELAY_AFTER_ADD_S:
                return
            after = plat.CA_SCALE_DOWN_UNNEEDED_S
        else:
            after = plf.node_scale_down_after_s
        for node in list(self.nodes):
            idle_since = node.empty_since if node.empty_since is not None else node.ready_at
            if node.pod is None and node.ready_at <= t and t - idle_since >= after:
                self.nodes.remove(node)
                self.node_seconds += max(plat.BILLING_MINIMUM_S, t - node.launched_at)

    # --- the run ---------------------------------------------------------------------------

    def run(self, trace_name: str, rates: list[float]) -> Result:
        """Replay every second of the arrivals and return what it cost and how it served."""
        timeline: list[tuple[int, float, int, int]] = []
        changes = 0
        for t, arrived in enumerate(self.arrivals):
            before = self.replicas
            self._keda(t)
            if t % plat.HPA_SYNC_S == 0:
                self._hpa(t)
            changes += self.replicas != before
            self._reconcile(t)
            self._provision(t)
            self._schedule(t)
            ready = sum(1 for p in self.pods if p.ready)
            self._observe(t, arrived, self._serve(t, arrived, ready))
            self._remove_nodes(t)
            self.peak = max(self.peak, ready)
            if t % TIMELINE_STEP_S == 0:
                timeline.append((t, rates[t], ready, len(self.nodes)))
        end = len(self.arrivals)
        self.node_seconds += sum(end - n.launched_at for n in self.nodes)
        violations, cold_violations = self.lat.violations(self.slo)
        return Result(
            trace=trace_name,
            policy=self.policy.name,
            provisioner=self.platform.provisioner,
            slo_p99_ms=self.slo,
            requests=sum(self.lat.groups.values()),
            slo_violations=violations,
            cold_requests=sum(self.lat.cold.values()),
            cold_violations=cold_violations,
            p99_ms=self.lat.quantile(0.99),
            first_request_wait_s=self.first_wait,
            timed_out=self.timed_out,
            node_seconds=self.node_seconds,
            peak_replicas=self.peak,
            replica_changes=changes,
            timeline=timeline,
        )


def simulate(
    curve: ServiceCurve,
    policy: Policy,
    platform: Platform,
    trace: Trace,
    slo_p99_ms: float,
    seed: int = 1,
) -> Result:
    """Run ``policy`` on ``platform`` against ``trace`` (arrivals drawn with ``seed``)."""
    rates, arrivals = _draw(trace, seed)
    return Simulation(curve, policy, platform, arrivals, slo_p99_ms).run(trace.name, rates)


#: A few recent draws, so the candidates of one stack share theirs (a day is 86,400 numbers).
_DRAWS_KEPT: Final = 8
_DRAWS: dict[tuple[int, int], tuple[Trace, list[float], list[int]]] = {}


def _draw(trace: Trace, seed: int) -> tuple[list[float], list[int]]:
    """The trace's rates and arrivals, drawn once per (trace, seed) and shared by candidates."""
    key = (id(trace), seed)
    cached = _DRAWS.get(key)
    if cached is None or cached[0] is not trace:
        rates = trace.rates()
        cached = (trace, rates, poisson_arrivals(rates, seed))
        while len(_DRAWS) >= _DRAWS_KEPT:
            del _DRAWS[next(iter(_DRAWS))]  # the oldest draw
        _DRAWS[key] = cached
    return cached[1], cached[2]

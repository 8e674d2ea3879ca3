"""The health board: readiness and ejections in one predicate, and what counts as a failure."""

from gateway.backends.base import BackendModel
from gateway.config_resilience import OutlierDetection, Resilience
from gateway.errors import BackendError, BackendTimeout, BackendUnavailable, InvalidInput
from gateway.health.board import HealthBoard
from gateway.routing.router import ModelRoute, Variant


class Named:
    """Only what the board reads of a backend: its name."""

    def __init__(self, name: str) -> None:
        self.name = name


def variant(name: str, backend: str, consecutive: int = 2) -> Variant:
    policy = Resilience(outlier_detection=OutlierDetection(consecutive_5xx=consecutive))
    target = BackendModel("digits", "1")
    return Variant("digits", name, Named(backend), target, 1, resilience=policy)  # type: ignore[arg-type]


A, B = variant("a", "one"), variant("b", "two")
ROUTE = ModelRoute("digits", [A, B])


def test_no_predicate_while_everything_is_healthy():
    board = HealthBoard()
    assert board.predicate() is None
    board.set_ready("one", A.target, True)
    assert board.predicate() is None


def test_not_ready_is_unhealthy_until_a_probe_passes():
    board = HealthBoard()
    board.set_ready("one", A.target, False)
    healthy = board.predicate()
    assert healthy is not None
    assert not healthy(A)
    assert healthy(B)
    board.set_ready("one", A.target, True)
    assert board.predicate() is None


def test_backend_faults_eject_and_client_errors_do_not():
    board = HealthBoard()
    for _ in range(5):
        assert not board.failed(A, ROUTE, InvalidInput("bad tensor"))
    assert not board.failed(A, ROUTE, BackendTimeout("slow"))
    assert board.failed(A, ROUTE, BackendError("500"))
    assert not board.healthy(A)
    board.set_ready("one", A.target, True)  # a passing probe brings it back
    assert board.healthy(A)


def test_a_success_clears_the_streak():
    board = HealthBoard()
    board.failed(A, ROUTE, BackendUnavailable("refused"))
    board.succeeded(A)
    assert not board.failed(A, ROUTE, BackendUnavailable("refused"))

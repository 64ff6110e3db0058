"""The server's settings: from flags and STEMSERVE_* variables, checked once."""

from pathlib import Path

import pytest
from stemserve.core.errors import InvalidOptionError
from stemserve.core.settings import Settings

from stemserve.cli import get_parser


def test_environment_and_flags_fill_the_server_fields():
    environ = {"STEMSERVE_PORT": "6000", "STEMSERVE_API_KEYS_FILE": "/keys.txt", "STEMSERVE_MODELS": "a, b,",
               "STEMSERVE_SHUTDOWN_GRACE_S": "2.5", "STEMSERVE_HOST": "127.0.0.1"}
    settings = Settings.load({"port": 7000, "cache_max_bytes": 0}, environ=environ)
    assert (settings.port, settings.host, settings.cache_max_bytes) == (7000, "127.0.0.1", 0)  # flags win
    assert settings.api_keys_file == Path("/keys.txt") and settings.shutdown_grace_s == 2.5
    assert settings.model_names == ["a", "b"]
    assert Settings.load(environ={}).model_names == [] and Settings.load(environ={}).api_keys_file is None


@pytest.mark.parametrize("overrides,fragment", [
    ({"port": 70000}, "port must be within 0-65535, not 70000"),
    ({"metrics_port": -1}, "metrics_port must be within 0-65535, not -1"),
    ({"max_songs_in_flight": 0}, "max_songs_in_flight must be >= 1, not 0"),
    ({"max_songs_per_key": 0}, "max_songs_per_key must be >= 1, not 0"),
    ({"cache_max_bytes": -5}, "cache_max_bytes must be >= 0, not -5"),
    ({"tls_cert": "/c.pem"}, "tls_cert and tls_key must be given together"),
    ({"shutdown_grace_s": -1}, "shutdown_grace_s must be >= 0"),
    ({"port": "http"}, "setting port must be a int, not 'http'"),
])
def test_bad_server_settings_say_what_was_expected(overrides, fragment):
    with pytest.raises(InvalidOptionError) as failure:
        Settings.load(overrides, environ={})
    assert fragment in str(failure.value)


def test_serve_flags_map_onto_settings():
    args = get_parser().parse_args(["serve", "--port", "0", "--metrics-port", "9000", "--api-keys", "k.txt",
                                    "--max-songs-in-flight", "8", "--models", "m1", "--cache-max-bytes", "10"])
    assert (args.port, args.metrics_port, args.api_keys_file, args.max_songs_in_flight) == (0, 9000, Path("k.txt"), 8)
    assert (args.models, args.cache_max_bytes, args.tls_cert) == ("m1", 10, None)


def test_triton_flag_selects_triton_backends_without_connecting(tmp_path):
    from stemserve.core.errors import ModelNotFoundError
    from stemserve.server.metrics import ServiceMetrics
    from stemserve.server.models import ModelPool

    args = get_parser().parse_args(["serve", "--triton", "triton:8001", "--models", "a,b"])
    settings = Settings.load({"triton_url": args.triton_url, "models": args.models,
                              "model_repository": tmp_path / "empty"}, environ={})
    pool = ModelPool.from_settings(settings, ServiceMetrics())
    assert pool.names == ["a", "b"] and not pool.ready  # nothing contacted before warm-up
    unnamed = Settings.load({"triton_url": "triton:8001", "model_repository": tmp_path / "empty"}, environ={})
    with pytest.raises(ModelNotFoundError, match="expected models .* in the model repository .*empty, found none"):
        ModelPool.from_settings(unnamed, ServiceMetrics())
    local = Settings.load({"model_repository": tmp_path / "empty"}, environ={})
    with pytest.raises(ModelNotFoundError, match="expected models .* found none"):
        ModelPool.from_settings(local, ServiceMetrics())


def test_several_triton_addresses_make_a_fleet_for_the_service(tmp_path, monkeypatch):
    from stemserve.backends import fleet
    from stemserve.core.model_config import ModelSpec
    from stemserve.server.metrics import ServiceMetrics
    from stemserve.server.models import ModelPool

    built = []

    class FakeFleet:
        name, device, max_batch_size, checks_readiness = "triton", "cpu", 1, True

        def __init__(self, model, addresses, member) -> None:
            built.append((model, list(addresses)))
            self.spec = ModelSpec(name=model, stems=("vocals", "other"), sample_rate_hz=44_100, segment_samples=4_096)

        def warm_up(self) -> None:
            pass

    monkeypatch.setattr(fleet, "TritonFleet", FakeFleet)
    settings = Settings.load({"triton_url": "a:8001,b:8001", "models": "m1", "model_repository": tmp_path}, environ={})
    pool = ModelPool.from_settings(settings, ServiceMetrics())
    pool.load_and_warm()
    assert built == [("m1", ["a:8001", "b:8001"])] and pool.get("m1").spec.name == "m1"

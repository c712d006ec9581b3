"""Trust, with real processes on 127.0.0.1: enrollment, pinning, mTLS, revocation, renewal.

Every refusal is checked the way an operator would: the status the agent
gets, the counter on /metrics, and that nothing was stored.
"""

from __future__ import annotations

import datetime
import json
import stat
import time
from concurrent import futures

import grpc
import pytest

from dcguard.agent.trust.pinning import PinError, pinned_ca
from dcguard.common.pki import fingerprint, load_certificate
from tests.support import metric, wait_for
from tests.trust_support import (
    TlsCollector,
    agent_credentials,
    channel,
    enroll,
    good_request,
    issue,
    load_ca,
    self_signed_ca,
    submit,
)

HOST = {"host": "testhost", "department": "test-dept"}


@pytest.fixture(params=[0, 2], ids=["in-process", "ingest-processes"])
def ingest_processes(request):
    """Every trust test runs against both ways of serving the agent port."""
    return request.param


@pytest.fixture
def tls_collector(tmp_path, ingest_processes):
    process = TlsCollector(tmp_path / "collector", ingest_processes=ingest_processes)
    process.start()
    yield process
    process.stop()


def stored(collector, host="testhost"):
    return metric(collector.metrics(), "dcguard_agent_reports_stored_total", host=host) or 0


def enrollments(collector, result):
    return metric(collector.metrics(), "dcguard_collector_enrollments_total", result=result)


def test_enroll_then_run_delivers_over_mtls(tls_collector, make_agent):
    agent = make_agent([tls_collector.grpc_address], insecure=False)
    before = json.loads(agent.cli("status", "--json").stdout)
    assert before["collectors"][tls_collector.grpc_address].startswith("not checked: not enrolled")
    result = enroll(agent, tls_collector, tls_collector.token("testhost"))
    assert result.returncode == 0, result.stderr
    files = agent.state_dir / "tls"
    assert stat.S_IMODE((files / "agent.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE((tls_collector.tls_dir / "ca.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((tls_collector.tls_dir / "server.pem").stat().st_mode) == 0o600
    cert = load_certificate((files / "agent.pem").read_bytes())
    assert cert.subject.rfc4514_string() == "OU=test-dept,CN=testhost"
    # The collector stored only a hash of the token.
    db = (tls_collector.data_dir / "collector.db").read_bytes()
    assert b"dcg1." not in db

    agent.start()
    wait_for(
        lambda: metric(tls_collector.metrics(), "dcguard_agent_up", **HOST) == 1,
        message="the enrolled agent to be up",
    )
    assert enrollments(tls_collector, "ok") == 1
    assert tls_collector.rejected("unauthenticated") == 0
    # status probes the collector over mTLS, exactly as run connects.
    after = json.loads(agent.cli("status", "--json").stdout)
    assert after["collectors"][tls_collector.grpc_address] == "reachable"
    import subprocess

    check = subprocess.run(
        ["promtool", "check", "metrics"],
        input=tls_collector.metrics_text(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert check.returncode == 0 and not check.stderr.strip(), check.stdout + check.stderr


def test_agent_without_enrollment_says_so_in_one_line(tls_collector, make_agent):
    agent = make_agent([tls_collector.grpc_address], insecure=False)
    result = agent.cli("run")
    assert result.returncode == 2
    assert "enroll the agent first" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_wrong_fingerprint_is_refused_and_the_token_survives(tls_collector, make_agent):
    agent = make_agent([tls_collector.grpc_address], insecure=False)
    token = tls_collector.token("testhost")
    wrong = "sha256:" + "ab" * 32
    result = enroll(agent, tls_collector, token, fingerprint=wrong)
    assert result.returncode == 1
    assert "does not present the CA" in result.stderr
    assert not (agent.state_dir / "tls" / "agent.pem").exists()
    # Nothing was sent to the collector: the token still works.
    assert enroll(agent, tls_collector, token).returncode == 0


def test_garbage_fingerprint_flag_is_one_line(tls_collector, make_agent):
    agent = make_agent([tls_collector.grpc_address], insecure=False)
    result = enroll(agent, tls_collector, "x", fingerprint="md5:1234")
    assert result.returncode == 2
    assert "--ca-fingerprint" in result.stderr and "Traceback" not in result.stderr


def test_man_in_the_middle_showing_the_real_ca_is_refused(tls_collector, tmp_path):
    """An impostor can copy the public CA certificate into its chain, but not its signature."""
    _, real_ca = load_ca(tls_collector)
    evil_key, evil_ca = self_signed_ca("impostor")
    key_pem, cert_pem = issue(evil_key, evil_ca, "localhost", server=True)
    from cryptography.hazmat.primitives import serialization

    chain = cert_pem + real_ca.public_bytes(serialization.Encoding.PEM)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    port = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([(key_pem, chain)]))
    server.start()
    try:
        with pytest.raises(PinError, match="does not lead to the pinned CA"):
            pinned_ca(f"127.0.0.1:{port}", tls_collector.fingerprint, timeout=10)
        # The same pin against the genuine collector works.
        genuine = pinned_ca(tls_collector.enroll_address, tls_collector.fingerprint, 10)
        assert fingerprint(load_certificate(genuine)) == tls_collector.fingerprint
    finally:
        server.stop(0)


def test_token_works_once(tls_collector, make_agent):
    token = tls_collector.token("testhost")
    first = make_agent([tls_collector.grpc_address], name="first", insecure=False)
    assert enroll(first, tls_collector, token).returncode == 0
    second = make_agent([tls_collector.grpc_address], name="second", insecure=False)
    result = enroll(second, tls_collector, token)
    assert result.returncode == 1
    assert "UNAUTHENTICATED" in result.stderr and "already used" in result.stderr
    assert enrollments(tls_collector, "token_used") == 1
    assert not (second.state_dir / "tls" / "agent.pem").exists()


def test_expired_token_is_refused(tls_collector, make_agent):
    token = tls_collector.token("testhost", ttl="1s")
    time.sleep(1.5)  # let the token expire (the assertion is on the outcome, not the time)
    agent = make_agent([tls_collector.grpc_address], insecure=False)
    result = enroll(agent, tls_collector, token)
    assert result.returncode == 1 and "expired" in result.stderr
    assert enrollments(tls_collector, "token_expired") == 1


def test_token_binds_host_and_department(tls_collector, make_agent):
    token = tls_collector.token("otherhost")
    agent = make_agent([tls_collector.grpc_address], insecure=False)
    result = enroll(agent, tls_collector, token)
    assert result.returncode == 1 and "PERMISSION_DENIED" in result.stderr
    assert enrollments(tls_collector, "identity_mismatch") == 1
    wrong_department = tls_collector.token("testhost", department="elsewhere")
    assert enroll(agent, tls_collector, wrong_department).returncode == 1
    assert enrollments(tls_collector, "identity_mismatch") == 2
    invented = enroll(agent, tls_collector, "dcg1.not-a-token")
    assert invented.returncode == 1 and "UNAUTHENTICATED" in invented.stderr
    assert enrollments(tls_collector, "invalid_token") == 1


def test_submit_without_client_certificate_is_refused(tls_collector):
    ca_pem = (tls_collector.tls_dir / "ca.crt").read_bytes()
    # The agent port does not complete a handshake without a certificate.
    with channel(tls_collector.grpc_address, ca_pem) as ch:
        assert submit(ch, good_request()) == grpc.StatusCode.UNAVAILABLE
    # The enrollment port talks TLS without one, and auth.py refuses Submit there.
    with channel(tls_collector.enroll_address, ca_pem) as ch:
        assert submit(ch, good_request()) == grpc.StatusCode.UNAUTHENTICATED
        renew = ch.unary_unary("/dcguard.v1.Collector/Renew")
        with pytest.raises(grpc.RpcError) as refused:
            renew(b"", timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert tls_collector.rejected("unauthenticated") == 1
    assert stored(tls_collector) == 0


def test_certificates_from_another_ca_or_expired_are_refused(tls_collector):
    ca_pem = (tls_collector.tls_dir / "ca.crt").read_bytes()
    other_key, other_ca = self_signed_ca("another collector")
    foreign = issue(other_key, other_ca, "testhost")
    ca_key, ca_cert = load_ca(tls_collector)
    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=2)
    expired = issue(
        ca_key, ca_cert, "testhost", not_before=past, not_after=past + datetime.timedelta(days=1)
    )
    for credentials in (foreign, expired):
        # The agent port refuses them in the TLS handshake (the TLS library
        # checks the chain and expiry against our CA before any request)...
        with channel(tls_collector.grpc_address, ca_pem, credentials) as ch:
            assert submit(ch, good_request()) == grpc.StatusCode.UNAVAILABLE
        # ...and the enrollment port never asks for them: counted as unauthenticated.
        with channel(tls_collector.enroll_address, ca_pem, credentials) as ch:
            assert submit(ch, good_request()) == grpc.StatusCode.UNAUTHENTICATED
    assert tls_collector.rejected("unauthenticated") == 2
    assert stored(tls_collector) == 0
    assert metric(tls_collector.metrics(), "dcguard_agent_up", **HOST) is None


def test_valid_agent_claiming_another_host_is_denied(tls_collector, make_agent):
    agent = make_agent([tls_collector.grpc_address], insecure=False)
    assert enroll(agent, tls_collector, tls_collector.token("testhost")).returncode == 0
    ca_pem = (agent.state_dir / "tls" / "ca.crt").read_bytes()
    with channel(tls_collector.grpc_address, ca_pem, agent_credentials(agent)) as ch:
        assert submit(ch, good_request(host="victim")) == grpc.StatusCode.PERMISSION_DENIED
        assert submit(ch, good_request(department="elsewhere")) == (
            grpc.StatusCode.PERMISSION_DENIED
        )
        assert submit(ch, good_request()) == grpc.StatusCode.OK
    assert tls_collector.rejected("permission_denied") == 2
    assert stored(tls_collector, "victim") == 0
    assert stored(tls_collector) == 1


def test_revoked_agent_is_refused_on_its_next_call(tls_collector, make_agent):
    agent = make_agent([tls_collector.grpc_address], insecure=False)
    assert enroll(agent, tls_collector, tls_collector.token("testhost")).returncode == 0
    agent.start()
    wait_for(lambda: stored(tls_collector) >= 2, message="reports over mTLS")
    result = tls_collector.cli("agents", "revoke", "testhost")
    assert result.returncode == 0, result.stderr
    wait_for(
        lambda: tls_collector.rejected("permission_denied") >= 1,
        message="the revoked agent's next call to be refused",
    )
    after = stored(tls_collector)
    wait_for(lambda: tls_collector.rejected("permission_denied") >= 3, message="more refused calls")
    assert stored(tls_collector) == after
    wait_for(lambda: "revoked" in agent.log(), message="the agent to log the refusal")
    # Renewal is no way back in either.
    ca_pem = (agent.state_dir / "tls" / "ca.crt").read_bytes()
    with (
        channel(tls_collector.grpc_address, ca_pem, agent_credentials(agent)) as ch,
        pytest.raises(grpc.RpcError) as refused,
    ):
        ch.unary_unary("/dcguard.v1.Collector/Renew")(b"", timeout=10)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # A new token enrolls the host again.
    agent.stop()
    assert enroll(agent, tls_collector, tls_collector.token("testhost")).returncode == 0
    agent.start()
    wait_for(lambda: stored(tls_collector) > after, message="delivery after re-enrollment")


def test_revoking_an_unknown_host_is_one_line(tls_collector):
    result = tls_collector.cli("agents", "revoke", "nobody")
    assert result.returncode == 2 and "no certificate" in result.stderr
    result = tls_collector.cli("agents", "revoke", "bad host")
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_certificate_renews_before_expiry_and_delivery_continues(
    tmp_path, make_agent, ingest_processes
):
    # With ingest processes, Renew is admitted by one and signed by the collector.
    collector = TlsCollector(
        tmp_path / "short",
        tls_extra='client_cert_lifetime = "6s"',
        ingest_processes=ingest_processes,
    )
    collector.start()
    try:
        agent = make_agent([collector.grpc_address], insecure=False)
        assert enroll(agent, collector, collector.token("testhost")).returncode == 0
        cert_file = agent.state_dir / "tls" / "agent.pem"
        first = load_certificate(cert_file.read_bytes())
        agent.start()
        wait_for(
            lambda: load_certificate(cert_file.read_bytes()).serial_number != first.serial_number,
            timeout=30,
            message="a renewed certificate",
        )
        # Keep delivering well past the first certificate's expiry.
        wait_for(
            lambda: (
                datetime.datetime.now(datetime.timezone.utc)
                > first.not_valid_after_utc + datetime.timedelta(seconds=2)
            ),
            timeout=30,
            message="the first certificate to expire",
        )
        before = stored(collector)
        wait_for(
            lambda: stored(collector) > before + 2,
            timeout=30,
            message="delivery with the renewed certificate",
        )
        renewals = metric(
            collector.metrics(), "dcguard_collector_certificate_renewals_total", result="ok"
        )
        assert renewals >= 1
        assert stat.S_IMODE((agent.state_dir / "tls" / "agent.pem").stat().st_mode) == 0o600
    finally:
        collector.stop()


def test_ca_init_refuses_to_overwrite_and_token_needs_a_ca(tmp_path):
    collector = TlsCollector(tmp_path / "c")
    again = collector.cli("ca", "init")
    assert again.returncode == 2 and "--force" in again.stderr
    forced = collector.cli("ca", "init", "--force", "--address", "127.0.0.1")
    assert forced.returncode == 0
    assert collector.fingerprint not in forced.stdout
    bad = collector.cli("ca", "init", "--force", "--address", "not-an-ip")
    assert bad.returncode == 2 and "--address" in bad.stderr
    bare = TlsCollector.__new__(TlsCollector)
    bare.config_path = tmp_path / "bare.toml"
    bare.config_path.write_text(f'[server]\ndata_dir = "{tmp_path / "empty"}"\n')
    result = bare.cli("token", "create", "--host", "h", "--department", "d")
    assert result.returncode == 2 and "ca init" in result.stderr
    for flag, value in (("--host", "bad host"), ("--department", 'x"y')):
        args = {"--host": "h", "--department": "d", flag: value}
        result = collector.cli("token", "create", *[x for kv in args.items() for x in kv])
        assert result.returncode == 2 and flag in result.stderr, flag
    for ttl in ("0s", "31d", "soon"):
        result = collector.cli("token", "create", "--host", "h", "--department", "d", "--ttl", ttl)
        assert result.returncode == 2 and "--ttl" in result.stderr, ttl


def test_deploy_configs_parse_and_default_to_mtls():
    from pathlib import Path

    from dcguard.agent.config import load_config as load_agent
    from dcguard.collector.config import load_config as load_collector

    deploy = Path(__file__).parent.parent / "deploy"
    collector = load_collector(deploy / "collector.toml")
    agent = load_agent(deploy / "agent.toml")
    assert collector.insecure is False and agent.collector.insecure is False
    assert collector.tls.enroll_listen.endswith(":4741")
    agent.close_sources()


def test_damaged_credentials_are_one_line_not_a_traceback(tls_collector, make_agent):
    agent = make_agent([tls_collector.grpc_address], insecure=False)
    assert enroll(agent, tls_collector, tls_collector.token("testhost")).returncode == 0
    (agent.state_dir / "tls" / "agent.pem").write_bytes(b"garbage")
    result = agent.cli("run")
    assert result.returncode == 2
    assert "enroll the agent again" in result.stderr and "Traceback" not in result.stderr


def test_enroll_address_defaults_to_the_first_collector_on_4741(tmp_path, make_agent):
    from dcguard.agent.config import load_config
    from dcguard.agent.trust.enroll import default_enroll_address

    agent = make_agent(["collector.example:4740", "[::1]:4740"], insecure=False)
    config = load_config(agent.config_path)
    assert default_enroll_address(config) == "collector.example:4741"
    config.close_sources()
    v6 = make_agent(["[::1]:4740"], name="v6", insecure=False)
    config = load_config(v6.config_path)
    assert default_enroll_address(config) == "[::1]:4741"
    config.close_sources()
    result = agent.cli(
        "enroll", "--token", "t", "--ca-fingerprint", "sha256:" + "0" * 64, "--address", "no-port"
    )
    assert result.returncode == 2 and "--address" in result.stderr


def test_server_certificate_can_be_reissued_without_touching_agents(tls_collector, make_agent):
    agent = make_agent([tls_collector.grpc_address], insecure=False)
    assert enroll(agent, tls_collector, tls_collector.token("testhost")).returncode == 0
    agent.start()
    wait_for(lambda: stored(tls_collector) >= 1, message="delivery")
    result = tls_collector.cli("ca", "server-cert", "--name", "localhost", "--address", "127.0.0.1")
    assert result.returncode == 0, result.stderr
    assert tls_collector.fingerprint in result.stdout
    tls_collector.stop()
    tls_collector.start()
    before = stored(tls_collector)
    wait_for(lambda: stored(tls_collector) > before, message="delivery after the reissue")
    assert tls_collector.cli("ca", "server-cert").returncode == 2
    bad = tls_collector.cli("ca", "server-cert", "--address", "nope")
    assert bad.returncode == 2 and "--address" in bad.stderr


def test_enrolled_agent_does_not_deliver_to_a_collector_of_another_ca(
    tls_collector, tmp_path, make_agent
):
    """After enrollment the agent trusts only its pinned CA: an impostor gets nothing."""
    impostor = TlsCollector(tmp_path / "impostor")
    impostor.start()
    try:
        agent = make_agent([impostor.grpc_address], insecure=False)
        # Enrolled with the genuine collector, then pointed at the impostor.
        assert enroll(agent, tls_collector, tls_collector.token("testhost")).returncode == 0
        agent.start()
        wait_for(lambda: "delivery failing" in agent.log(), message="the refusal in the log")
        assert stored(impostor) == 0
        assert metric(impostor.metrics(), "dcguard_agent_up", **HOST) is None
    finally:
        impostor.stop()


def test_stopping_the_agent_waits_for_the_certificate_renewer(tmp_path, monkeypatch):
    """A renewal under way when the agent stops is finished before run returns, not
    cut off by the interpreter's exit (it writes the agent's key and certificate)."""
    import threading

    from cryptography.hazmat.primitives import serialization

    from dcguard.agent.config import load_config
    from dcguard.agent.cycle.agent_loop import run_agent
    from dcguard.agent.trust import keys
    from dcguard.agent.trust.credentials import AgentTlsFiles
    from tests.support import Agent
    from tests.trust_support import issue, self_signed_ca

    agent = Agent(tmp_path / "agent", ["127.0.0.1:1"], insecure=False)  # nothing listens
    ca_key, ca_cert = self_signed_ca("renewer-stop-ca")
    now = datetime.datetime.now(datetime.timezone.utc)
    key_pem, cert_pem = issue(
        ca_key,
        ca_cert,
        "testhost",  # due: 2/3 of its life is over
        not_before=now - datetime.timedelta(days=80),
        not_after=now + datetime.timedelta(days=10),
    )
    AgentTlsFiles(agent.state_dir).store(
        key_pem, cert_pem, ca_cert.public_bytes(serialization.Encoding.PEM)
    )
    renewing = threading.Event()
    make_key_and_csr = keys.make_key_and_csr

    def slow_key(host: str) -> tuple[bytes, bytes]:  # an old machine making its new key
        renewing.set()
        time.sleep(1.5)
        return make_key_and_csr(host)

    monkeypatch.setattr(keys, "make_key_and_csr", slow_key)
    stop = threading.Event()
    runner = threading.Thread(target=run_agent, args=(load_config(agent.config_path), stop))
    runner.start()
    try:
        assert renewing.wait(30), "the renewer never started a renewal"
    finally:
        stop.set()
        runner.join(30)
    assert not runner.is_alive()
    assert [t.name for t in threading.enumerate() if t.name == "cert-renewer"] == []


def test_a_certificate_unknown_to_an_emptied_registry_is_not_called_revoked(
    tls_collector, make_agent
):
    """A 0-byte database forgets every certificate; none of them was revoked, so
    the agent is told the truth and the collector logs why."""
    agent = make_agent([tls_collector.grpc_address], insecure=False)
    assert enroll(agent, tls_collector, tls_collector.token("testhost")).returncode == 0
    agent.start()
    wait_for(lambda: stored(tls_collector) >= 1, message="reports over mTLS")
    tls_collector.stop()
    for name in ("collector.db", "collector.db-wal", "collector.db-shm"):
        path = tls_collector.data_dir / name
        if path.exists():
            path.write_bytes(b"")
    tls_collector.start()
    wait_for(
        lambda: tls_collector.rejected("permission_denied") >= 1,
        message="the forgotten certificate to be refused",
    )
    wait_for(
        lambda: "unknown certificate" in agent.log(),
        message="the agent to be told its certificate is unknown",
    )
    assert "revoked" not in agent.log()
    wait_for(
        lambda: "not in the registry" in tls_collector.log(), message="the collector to log why"
    )
    assert stored(tls_collector) == 0
    # The certificate is ours (CA-signed), so the refused host is named on /metrics.
    assert (
        metric(
            tls_collector.metrics(),
            "dcguard_agent_reports_rejected_total",
            reason="permission_denied",
            **HOST,
        )
        or 0
    ) >= 1

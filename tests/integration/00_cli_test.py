"""The command line: help, version, config file and flag errors, and that
docs/configuration.md matches the broker's own config table."""
import os
import subprocess

from conftest import HERALD_BIN, ROOT


def run(*args, timeout=10):
    return subprocess.run([HERALD_BIN, *args], capture_output=True, text=True, timeout=timeout)


def test_help_and_version():
    r = run("--help")
    assert r.returncode == 0 and "herald serve" in r.stdout and "--flush" in r.stdout
    r = run("--version")
    assert r.returncode == 0 and r.stdout.startswith("herald ")


def test_unknown_command_and_flag_are_named():
    r = run("frobnicate")
    assert r.returncode == 2 and "frobnicate" in r.stderr
    r = run("serve", "--no-such-key", "1")
    assert r.returncode == 2 and "no.such.key" in r.stderr


def test_bad_values_are_named(tmp_path):
    r = run("serve", "--flush", "sometimes")
    assert r.returncode == 2 and "'sometimes'" in r.stderr and "'flush'" in r.stderr
    r = run("serve", "--num-partitions", "0")
    assert r.returncode == 2 and "num.partitions" in r.stderr
    cfg = tmp_path / "h.conf"
    cfg.write_text("# comment\nnum.partitions = 3\nbogus = 1\n")
    r = run("serve", "--config", str(cfg))
    assert r.returncode == 2 and "h.conf:3" in r.stderr and "bogus" in r.stderr


def test_config_file_and_flags_override(tmp_path, broker_factory):
    cfg = tmp_path / "h.conf"
    cfg.write_text("num.partitions = 3\nlog.level = debug\n")
    b = broker_factory("--config", str(cfg), "--log-level", "info")
    from confluent_kafka.admin import AdminClient
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": b.bootstrap})
    p.produce("auto3", b"x")
    p.flush(10)
    md = AdminClient({"bootstrap.servers": b.bootstrap}).list_topics(timeout=10)
    assert len(md.topics["auto3"].partitions) == 3
    assert "DEBUG" not in b.log()


def test_sigint_is_a_clean_shutdown(broker):
    import signal
    broker.proc.send_signal(signal.SIGINT)
    assert broker.proc.wait(timeout=20) == 0


def test_docs_configuration_matches_table():
    r = run("config-reference")
    with open(os.path.join(ROOT, "docs", "configuration.md")) as f:
        doc = f.read()
    block = doc.split("<!-- config-reference:begin -->\n")[1].split("<!-- config-reference:end -->")[0]
    assert block == r.stdout, "regenerate the table in docs/configuration.md with `herald config-reference`"

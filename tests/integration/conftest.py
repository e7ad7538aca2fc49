"""Shared fixtures: start a real Herald broker on an ephemeral port with a
temp data directory, and stop it (by PID) afterwards.

The binary is $HERALD_BIN, or build-test/herald (the sanitizer build that
`make test` uses)."""
import os
import signal
import subprocess
import tempfile
import threading
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERALD_BIN = os.environ.get("HERALD_BIN", os.path.join(ROOT, "build-test", "herald"))


class Broker:
    """One herald process. restart() keeps the data directory."""

    def __init__(self, data_dir, extra_args=(), soft_nofile=None):
        self.data_dir = data_dir
        self.soft_nofile = soft_nofile
        self.extra_args = list(extra_args)
        self.proc = None
        self.port = None
        self.amqp_port = None
        self.http_port = None
        self.log_lines = []
        self._reader = None

    @property
    def http_url(self):
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def start(self, timeout=20):
        # Reuse the previous port on restart so clients can reconnect.
        port = self.port or 0
        aport = self.amqp_port or 0
        hport = self.http_port or 0
        args = [HERALD_BIN, "serve", "--data", self.data_dir, "--kafka", f"127.0.0.1:{port}",
                "--amqp", f"127.0.0.1:{aport}", "--http", f"127.0.0.1:{hport}",
                "--log-level", "info"] + self.extra_args
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:max_free_fill_size=4096:free_fill_byte=255")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        preexec = None
        if self.soft_nofile:
            import resource

            def preexec():
                hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
                if self.soft_nofile < 0:  # negative: pin both limits (the broker cannot raise them)
                    hard = -self.soft_nofile
                resource.setrlimit(resource.RLIMIT_NOFILE, (abs(self.soft_nofile), hard))
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                                     text=True, bufsize=1, preexec_fn=preexec)
        deadline = time.time() + timeout
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                if self.proc.poll() is not None:
                    break
                continue
            self.log_lines.append(line)
            if line.startswith("herald: amqp port "):
                self.amqp_port = int(line.split()[-1])
            if line.startswith("herald: http port "):
                self.http_port = int(line.split()[-1])
            # The server prints the AMQP port first, the Kafka port last.
            if line.startswith("herald: kafka port "):
                self.port = int(line.split()[-1])
                self._reader = threading.Thread(target=self._drain, daemon=True)
                self._reader.start()
                return self
        raise RuntimeError("herald did not start:\n" + "".join(self.log_lines[-50:]))

    def _drain(self):
        for line in self.proc.stdout:
            self.log_lines.append(line)

    def log(self):
        return "".join(self.log_lines)

    def wait_log(self, text, timeout=10):
        """True once text is in the log: lines arrive through a reader
        thread, so one written just before a socket closed may lag."""
        deadline = time.time() + timeout
        while text not in self.log():
            if time.time() > deadline:
                return False
            time.sleep(0.02)
        return True

    def stop(self, timeout=30):
        """SIGTERM and wait: a clean shutdown must exit 0."""
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=timeout)
        if self._reader:
            self._reader.join(timeout=5)
        return rc

    def kill(self):
        """SIGKILL: a crash, for recovery tests."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        if self._reader:
            self._reader.join(timeout=5)

    def restart(self):
        self.stop()
        return self.start()

    def assert_clean(self):
        text = self.log()
        assert "ERROR: AddressSanitizer" not in text, text[-5000:]
        assert "runtime error:" not in text, text[-5000:]


@pytest.fixture
def data_dir():
    with tempfile.TemporaryDirectory(prefix="herald-test-") as d:
        yield d


@pytest.fixture
def broker_factory(data_dir):
    started = []

    def make(*extra_args, data=None, soft_nofile=None):
        b = Broker(data or data_dir, extra_args, soft_nofile)
        started.append(b)
        return b.start()

    yield make
    for b in started:
        rc = b.stop()
        b.assert_clean()
        assert rc in (0, None, -9), f"broker exited with {rc}\n" + b.log()[-5000:]


@pytest.fixture
def broker(broker_factory):
    return broker_factory()


class ReferenceAmqp:
    """An AMQP broker started elsewhere (HERALD_AMQP_REFERENCE=host:port, e.g.
    RabbitMQ), to check that a test's expectations match the reference
    behaviour. Tests that restart or kill the broker skip under it."""

    def __init__(self, spec):
        host, port = spec.rsplit(":", 1)
        self.host = host
        self.amqp_port = int(port)
        self.reference = True

    def log(self):
        return ""


@pytest.fixture
def amqp_broker(broker_factory):
    """The broker AMQP tests talk to: `.amqp_port` (and `.host`)."""
    ref = os.environ.get("HERALD_AMQP_REFERENCE")
    if ref:
        return ReferenceAmqp(ref)
    b = broker_factory()
    b.host = "127.0.0.1"
    b.reference = False
    return b

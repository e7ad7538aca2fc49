"""Celery (kombu + py-amqp) against the broker: a real worker subprocess (solo
pool) consumes tasks, results come back through the rpc:// result backend (a
reply queue per client). Checked against RabbitMQ 3.10.8."""
import importlib.util
import os
import subprocess
import sys
import tempfile
import threading
import time

import pytest

from amqp_util import Env, time_limit, uid


@pytest.fixture(autouse=True)
def _bounded():
    with time_limit(180):
        yield


PY = "/usr/bin/python3"

MODULE = '''
from celery import Celery

app = Celery("{name}", broker="amqp://guest:guest@{host}:{port}//", backend="rpc://")
app.conf.update(
    task_default_queue="{queue}",
    task_default_exchange="{exchange}",
    task_default_routing_key="{queue}",
    broker_connection_timeout=5,
    broker_connection_retry=False,
    broker_connection_max_retries=0,
    worker_hijack_root_logger=False,
    result_expires=60,
)


@app.task(name="{name}.add")
def add(x, y):
    return x + y


@app.task(name="{name}.echo")
def echo(value):
    return value


@app.task(name="{name}.flaky", bind=True, max_retries=5)
def flaky(self, fail_times):
    if self.request.retries < fail_times:
        raise self.retry(countdown=0.2)
    return self.request.retries


@app.task(name="{name}.boom")
def boom():
    raise ValueError("boom from the worker")
'''


class Worker:
    def __init__(self, workdir, module, queue, node):
        env = dict(os.environ)
        env["PYTHONPATH"] = workdir
        self.node = node
        self.lines = []
        self.proc = subprocess.Popen(
            [PY, "-m", "celery", "-A", module, "worker", "--pool=solo", "--concurrency=1", "-Q", queue,
             "-n", node, "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "info"],
            cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)

    def log(self):
        return "".join(self.lines)

    def wait_ready(self, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(" ready." in line for line in self.lines):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError("celery worker not ready:\n" + self.log()[-5000:])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()  # warm shutdown
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.reader.join(timeout=5)


@pytest.fixture
def celery_setup(amqp_broker):
    """Writes a task module, starts a worker on its own queue, imports the module
    here as the client. Yields (module, worker, workdir)."""
    name = "hq_" + uid("c").replace("-", "_")
    queue = uid("celery-q")
    exchange = uid("celery-x")
    env = Env(amqp_broker)
    env.queues.append(queue)
    env.exchanges.append(exchange)
    with tempfile.TemporaryDirectory(prefix="herald-celery-") as workdir:
        path = os.path.join(workdir, name + ".py")
        with open(path, "w") as f:
            f.write(MODULE.format(name=name, host=amqp_broker.host, port=amqp_broker.amqp_port, queue=queue,
                                  exchange=exchange))
        worker = Worker(workdir, name, queue, f"w-{name}@localhost")
        mod = None
        try:
            worker.wait_ready()
            spec = importlib.util.spec_from_file_location(name, path)
            mod = importlib.util.module_from_spec(spec)
            sys.modules[name] = mod
            spec.loader.exec_module(mod)
            yield mod, worker, workdir
        finally:
            worker.stop()
            if mod is not None:
                try:
                    mod.app.close()
                except Exception:  # noqa: BLE001 - best effort
                    pass
                sys.modules.pop(name, None)
            env.cleanup()


def test_celery_delay_and_get_results(celery_setup):
    mod, worker, _ = celery_setup
    r = mod.add.delay(2, 3)
    assert r.get(timeout=30) == 5
    assert r.successful()
    results = [mod.add.delay(i, i * 10) for i in range(20)]
    assert [x.get(timeout=30) for x in results] == [i * 11 for i in range(20)]
    value = {"text": "h\u00e9llo", "list": [1, 2.5, None, True], "nested": {"k": "v"}}
    assert mod.echo.delay(value).get(timeout=30) == value
    assert "Task " + mod.__name__ + ".add" in worker.log()


def test_celery_task_retries_then_succeeds(celery_setup):
    mod, worker, _ = celery_setup
    r = mod.flaky.delay(3)
    assert r.get(timeout=60) == 3  # ran 4 times: 3 retries with a countdown (ETA messages)
    assert worker.log().count("Retry in") == 3


def test_celery_task_exception_reaches_client(celery_setup):
    mod, worker, _ = celery_setup
    r = mod.boom.delay()
    with pytest.raises(ValueError) as e:
        r.get(timeout=30)
    assert "boom from the worker" in str(e.value)
    assert r.failed()
    # the worker survives a failing task
    assert mod.add.delay(1, 1).get(timeout=30) == 2


def test_celery_inspect_ping(celery_setup):
    mod, worker, workdir = celery_setup
    env = dict(os.environ)
    env["PYTHONPATH"] = workdir
    r = subprocess.run([PY, "-m", "celery", "-A", mod.__name__, "inspect", "ping", "-d", worker.node,
                        "--timeout", "10"], cwd=workdir, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert worker.node in r.stdout
    assert "pong" in r.stdout
    # the same through the client app's control API
    replies = mod.app.control.ping(destination=[worker.node], timeout=5)
    assert replies == [{worker.node: {"ok": "pong"}}]

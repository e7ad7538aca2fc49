"""kafkajs 2.2.4 (node) against Herald: admin, idempotent produce, a
consumer group with commits. The package comes from the npm registry on the
first run (tests/integration/kafkajs/package-lock.json pins it)."""
import os
import subprocess

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kafkajs")


def ensure_kafkajs():
    if not os.path.isdir(os.path.join(HERE, "node_modules", "kafkajs")):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=HERE, check=True, capture_output=True,
                       timeout=300)


def test_kafkajs_admin_produce_consume_group(broker):
    ensure_kafkajs()
    r = subprocess.run(["node", "smoke.js", broker.bootstrap], cwd=HERE, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr + broker.log()[-3000:]
    assert "kafkajs ok" in r.stdout

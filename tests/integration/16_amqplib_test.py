"""amqplib 0.10.9 (node) against Herald's AMQP 0-9-1 front end, one scenario per test (see
amqplib/scenario.js): confirms + prefetch, topic/fanout/headers exchanges, RPC over direct reply-to,
nack/reject and a channel error, mandatory returns. The package comes from the npm registry on the
first run (tests/integration/amqplib/package-lock.json pins it). Every scenario was checked against
RabbitMQ 3.10.8 (HERALD_AMQP_REFERENCE=127.0.0.1:PORT runs them against a reference broker)."""
import os
import subprocess

import pytest

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "amqplib")

SCENARIOS = [
    "confirms_prefetch",
    "exchanges",
    "rpc_direct_reply_to",
    "nack_reject_channel_error",
    "mandatory_return",
]


def ensure_amqplib():
    if not os.path.isdir(os.path.join(HERE, "node_modules", "amqplib")):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=HERE, check=True, capture_output=True,
                       timeout=300)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_amqplib(amqp_broker, scenario):
    ensure_amqplib()
    url = f"amqp://guest:guest@{amqp_broker.host}:{amqp_broker.amqp_port}"
    # scenario.js stops itself after 60 s (exit 2); the subprocess limit is a backstop.
    r = subprocess.run(["node", "scenario.js", url, scenario], cwd=HERE, capture_output=True, text=True,
                       timeout=90)
    assert r.returncode == 0, r.stdout + r.stderr + amqp_broker.log()[-3000:]
    assert f"amqplib ok: {scenario}:" in r.stdout, r.stdout + r.stderr

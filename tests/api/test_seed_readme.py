"""The seed's README: its three curl commands, run verbatim against the test server."""

import json
import shutil
import subprocess

SEED_STEP1 = """curl -X POST http://localhost:8000/products \\
  -H "Content-Type: application/json" \\
  -d '{"sku": "GAMER-PC-01", "name": "PC Gamer Ultra", "price": 5000.00, "stock": 5}'"""
SEED_STEP2 = "curl http://localhost:8000/products/SEU_ID_AQUI"
SEED_STEP3 = "curl http://localhost:8000/catalog"


def run_curl(command, base):
    command = command.replace("http://localhost:8000", base)
    assert shutil.which("curl"), "curl is not installed"
    p = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=20)
    assert p.returncode == 0, (command, p.stderr)
    return p.stdout


def test_seed_readme_curl_commands(fresh):
    out = run_curl(SEED_STEP1, fresh.base)
    view = json.loads(out)
    assert view["sku"] == "GAMER-PC-01"
    assert view["name"] == "PC Gamer Ultra"
    assert view["stock"] == 5
    assert view["available"] is True
    assert view["desc"] == "PC Gamer Ultra - $5000.00"
    assert view["version"] == 1
    assert '"price":5000.00,' in out
    pid = view["id"]

    out2 = run_curl(SEED_STEP2.replace("SEU_ID_AQUI", pid), fresh.base)
    assert out2 == out

    out3 = run_curl(SEED_STEP3, fresh.base)
    assert json.loads(out3) == [view]
    assert out3 == "[" + out + "]"

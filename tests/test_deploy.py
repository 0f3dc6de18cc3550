"""The lecture hall's deployment files (deploy/): Docker cannot run here, so they are parsed and
checked against each other and against the app: every replica the proxy routes to exists and
listens where the proxy sends it, every part finds the database and the Ray head where they
are, the proxy's visitor cookie is the one the app reads, and nginx itself accepts the config."""

import re
import shutil
import subprocess

import pytest
import yaml

from helpers import REPO

DEPLOY = REPO / "deploy"
APP_VARIABLES = {"MLP_DEMO_DATABASE_URL", "MLP_DEMO_RAY_ADDRESS", "MLP_DEMO_CHECKPOINTS", "MNIST_ROOT"}


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def nginx() -> str:
    return (DEPLOY / "nginx.conf").read_text()


def upstream_servers(conf: str) -> list[tuple[str, int]]:
    block = re.search(r"upstream mlp_demo_app \{(.*?)\}", conf, re.S).group(1)
    return [(host, int(port)) for host, port in re.findall(r"^\s*server ([\w.-]+):(\d+)", block, re.M)]


def option(command: list[str], name: str) -> str:
    return next(part.split("=", 1)[1] for part in command if part.startswith(f"--{name}="))


def test_the_proxy_routes_to_every_app_replica_where_it_listens():
    services = compose()["services"]
    apps = sorted(name for name in services if name.startswith("app-"))
    assert len(apps) >= 2
    assert sorted(host for host, _ in upstream_servers(nginx())) == apps
    for name in apps:
        port = int(option(services[name]["command"], "server.port"))
        assert (name, port) in upstream_servers(nginx())
    listen = int(re.search(r"listen (\d+);", nginx()).group(1))
    assert services["proxy"]["ports"] == [f"{listen}:{listen}"]
    assert "./nginx.conf:/etc/nginx/nginx.conf:ro" in services["proxy"]["volumes"]


def test_every_part_finds_the_database_and_the_ray_head():
    services = compose()["services"]
    postgres = services["postgres"]["environment"]
    head_port = option(services["ray-head"]["command"], "port")
    for name in (n for n in services if n.startswith("app-")):
        env = services[name]["environment"]
        assert APP_VARIABLES <= set(env), name
        assert env["MLP_DEMO_DATABASE_URL"] == (
            f"postgresql+psycopg://{postgres['POSTGRES_USER']}:{postgres['POSTGRES_PASSWORD']}"
            f"@postgres:5432/{postgres['POSTGRES_DB']}")
        assert env["MLP_DEMO_RAY_ADDRESS"] == f"ray-head:{head_port}"
        assert "shared:/shared" in services[name]["volumes"]
        assert env["MLP_DEMO_CHECKPOINTS"].startswith("/shared/")  # one folder for every replica
    for name in ("ray-cpu-worker", "ray-gpu-worker"):
        assert option(services[name]["command"], "address") == f"ray-head:{head_port}"
    assert option(services["ray-gpu-worker"]["command"], "num-gpus") == "1"
    gpu = services["ray-gpu-worker"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia"


def test_the_proxys_cookie_is_the_visitor_id_the_app_reads():
    from mlp_demo.ui.server import VISITOR_COOKIE, VISITOR_ID
    conf = nginx()
    assert f"$cookie_{VISITOR_COOKIE}" in conf and f'"{VISITOR_COOKIE}=$request_id;' in conf
    assert "hash $visitor consistent;" in conf and "ip_hash" not in conf.split("#")[0]
    assert "HttpOnly" in conf
    pattern = re.search(r'"~\^(.*?)\$"', conf).group(1)
    assert pattern == VISITOR_ID.pattern


def test_the_kubernetes_sketch_gives_each_part_its_variables():
    documents = list(yaml.safe_load_all((DEPLOY / "kubernetes" / "hall.yaml").read_text()))
    by_kind = {d["kind"]: d for d in documents}
    assert APP_VARIABLES <= set(by_kind["ConfigMap"]["data"])
    ray_pin = re.search(r"ray==([\d.]+)", (REPO / "requirements-cluster.txt").read_text()).group(1)
    assert by_kind["RayCluster"]["spec"]["rayVersion"] == ray_pin
    assert by_kind["ConfigMap"]["data"]["MLP_DEMO_RAY_ADDRESS"].startswith("mlp-demo-ray-head-svc:")
    annotations = by_kind["Ingress"]["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/affinity"] == "cookie"


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed (see .ci/run)")
def test_nginx_accepts_the_config(tmp_path):
    conf = nginx()
    for host, port in upstream_servers(conf):  # the replicas' names resolve only in Compose
        conf = conf.replace(f"server {host}:{port}", f"server 127.0.0.1:{port}")
    (tmp_path / "logs").mkdir()
    (tmp_path / "nginx.conf").write_text(f"error_log {tmp_path}/error.log;\npid {tmp_path}/nginx.pid;\n"
                                         + conf)
    done = subprocess.run(["nginx", "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr

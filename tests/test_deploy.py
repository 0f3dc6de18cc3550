"""The lecture hall's deployment files (deploy/): Docker cannot run here, so they are parsed and
checked against each other and against the app: every replica the proxy routes to exists and
listens where the proxy sends it, every part finds the database and the Ray head where they
are, the proxy's visitor cookie is the one the app reads, and nginx itself accepts the config."""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


# -- a Space, and any container host: the image as the Dockerfile builds it

DOCKERFILE = REPO / "Dockerfile"


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, its arguments) in order, continuation lines joined, comments dropped."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip())
            for line in joined.splitlines() if line.strip()]


class Image:
    """What the instructions, read in order, leave behind: each folder's owner, the users, the
    final user, working folder, environment and command. Docker's rules: WORKDIR creates a
    missing folder as root; COPY --chown owns what it copies, not an existing destination."""

    def __init__(self, text: str):
        self.owner: dict[str, str] = {"/": "root"}
        self.uid = {"root": 0}
        self.user, self.workdir, self.env, self.cmd = "root", "/", {}, []
        self.copied_as = "root"
        handlers = {"RUN": self.run, "WORKDIR": self.change_dir, "USER": self.become,
                    "ENV": self.set_env, "COPY": self.copy, "CMD": self.command}
        for instruction, args in dockerfile_instructions(text):
            handlers.get(instruction, lambda _: None)(args)

    def path(self, p: str) -> str:
        p = re.sub(r"\$\{?(\w+)\}?", lambda m: self.env.get(m.group(1), m.group(0)), p)
        return os.path.normpath(os.path.join(self.workdir, p))

    def make(self, p: str, who: str) -> None:
        for parent in reversed(Path(p).parents):
            self.owner.setdefault(str(parent), "root")
        self.owner.setdefault(p, who)

    def run(self, args: str) -> None:
        for command in re.split(r"&&|;|\|\|", args):
            try:
                words = shlex.split(command)
            except ValueError:  # a quoted string cut at one of its own semicolons
                continue
            flags = [w for w in words[1:] if w.startswith("-")]
            plain = [w for w in words[1:] if not w.startswith("-")]
            if words[:1] == ["useradd"]:
                name = words[-1]
                self.uid[name] = int(words[words.index("-u") + 1])
                if "-m" in flags:
                    self.make(f"/home/{name}", name)
            elif words[:1] == ["mkdir"]:
                for p in plain:
                    self.make(self.path(p), self.user)
            elif words[:1] == ["chown"]:
                who, paths = plain[0].split(":")[0], [self.path(p) for p in plain[1:]]
                for folder in list(self.owner):
                    if folder in paths or ("-R" in flags and any(folder.startswith(p + "/")
                                                                 for p in paths)):
                        self.owner[folder] = who

    def change_dir(self, args: str) -> None:
        self.workdir = self.path(args)
        self.make(self.workdir, "root")

    def become(self, args: str) -> None:
        self.user = args.split(":")[0]

    def set_env(self, args: str) -> None:
        for pair in shlex.split(args):
            name, value = pair.split("=", 1)
            self.env[name] = value

    def copy(self, args: str) -> None:
        words = args.split()
        who = next((w.split("=", 1)[1].split(":")[0] for w in words if w.startswith("--chown=")), "root")
        if words[-2:] == [".", "."]:  # the whole build context into the working folder
            self.copied_as = who

    def command(self, args: str) -> None:
        self.cmd = json.loads(args)

    def owner_of(self, p: str) -> str:
        while p not in self.owner:
            p = os.path.dirname(p)
        return self.owner[p]

    def written_folders(self) -> list[str]:
        """Where the app writes: MNIST, the models, the SQLite file beside them, the app folder."""
        models = self.env["MLP_DEMO_CHECKPOINTS"]
        return [self.workdir, self.env["MNIST_ROOT"], models, os.path.dirname(models)]


def front_matter() -> dict:
    return yaml.safe_load((REPO / "README.md").read_text().split("---")[1])


def test_the_images_user_owns_every_folder_the_app_writes():
    image = Image(DOCKERFILE.read_text())
    assert image.user == "user" and image.uid["user"] == 1000  # what a Space runs it as
    assert image.copied_as == "user"
    for folder in image.written_folders():
        assert image.uid[image.owner_of(folder)] == 1000, (folder, image.owner_of(folder))
    assert image.owner_of("/shared") == image.owner_of("/data") == "user"  # the hall's, a Space's


def test_the_containers_command_is_headless_on_the_spaces_port():
    image, meta = Image(DOCKERFILE.read_text()), front_matter()
    assert meta["sdk"] == "docker"
    assert image.cmd[:3] == ["streamlit", "run", "app.py"]
    assert f"--server.port={meta['app_port']}" in image.cmd
    assert "--server.headless=true" in image.cmd
    for command in (compose()["x-app"]["command"],):
        assert "--server.headless=true" in command
    config = (REPO / ".streamlit" / "config.toml").read_text()
    assert not re.search(r"^headless\s*=\s*true", config, re.M)  # a laptop's run opens a browser


def test_readme_deploys_with_the_hub_client_and_a_clone_holds_the_real_checkpoint(tmp_path):
    from deploy.space import tracked_files
    readme = (REPO / "README.md").read_text()
    deploying = readme[readme.index("## Deploying"):]
    assert "python deploy/space.py" in deploying
    assert "git push" not in deploying or ".gitattributes" in deploying
    assert "checkpoints/default.safetensors" in tracked_files()
    attributes = REPO / ".gitattributes"
    assert not attributes.exists() or "lfs" not in attributes.read_text()  # no git-lfs for us
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{REPO}", str(tmp_path / "c")],
                   check=True)
    from mlp_demo.checkpoints import read_header
    shipped = tmp_path / "c" / "checkpoints" / "default.safetensors"
    assert not shipped.read_bytes().startswith(b"version https://git-lfs")
    read_header(shipped.read_bytes(), shipped.name)  # a real checkpoint, by the strict reader


def laid_out(image: Image, root: Path, tiny_root: Path) -> dict:
    """A copy of the checkout laid out under root as the image lays it out: each folder owned as
    the instructions leave it, the files as COPY owns them, MNIST where the build fetches it.
    Returns the container's environment, its paths moved under root."""
    uid = image.uid
    for folder, who in sorted(image.owner.items()):
        (root / folder.lstrip("/")).mkdir(parents=True, exist_ok=True)
        os.chown(root / folder.lstrip("/"), uid[who], uid[who])
    app = root / image.workdir.lstrip("/")
    for name in tracked_files_here():
        target = app / name
        for parent in reversed(target.relative_to(app).parents):
            if not (app / parent).exists():
                (app / parent).mkdir()
                os.chown(app / parent, uid[image.copied_as], uid[image.copied_as])
        shutil.copy2(REPO / name, target)
        os.chown(target, uid[image.copied_as], uid[image.copied_as])
    env = {k: str(root / v.lstrip("/")) if v.startswith("/") else v for k, v in image.env.items()}
    mnist = Path(env["MNIST_ROOT"])
    if mnist.exists() and image.uid[image.owner_of(image.env["MNIST_ROOT"])] == 1000:
        shutil.copytree(tiny_root / "MNIST", mnist / "MNIST")  # as the build's fetch leaves it
        for p in [mnist / "MNIST", *(mnist / "MNIST").rglob("*")]:
            os.chown(p, 1000, 1000)
    return {**env, "HOME": str(root / "home" / "user")}


def tracked_files_here() -> list[str]:
    from deploy.space import tracked_files
    return [name for name in tracked_files() if (REPO / name).is_file()]


def as_uid_1000(command: list[str], env: dict, cwd: Path, **kwargs):
    return subprocess.run(["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups", *command],
                          env={"PATH": os.environ["PATH"], **env}, cwd=cwd, capture_output=True,
                          text=True, **kwargs)


@pytest.fixture
def container(tiny_root):
    """The image's layout in a fresh folder that uid 1000 can reach (pytest's own are root's
    alone), and the container's environment."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run as another user")
    with tempfile.TemporaryDirectory() as folder:
        Path(folder).chmod(0o755)
        image = Image(DOCKERFILE.read_text())
        env = laid_out(image, Path(folder) / "fs", tiny_root)
        app = Path(folder) / "fs" / image.workdir.lstrip("/")
        if as_uid_1000([sys.executable, "-c", "pass"], env, app).returncode:
            message = f"uid 1000 cannot run {sys.executable} (.ci/run opens its folders)"
            pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
        yield image, env, app


def test_the_apps_writes_work_as_the_containers_unprivileged_user(container):
    image, env, app = container
    started = as_uid_1000([sys.executable, "-m", "mlp_demo", "class", "new", "--json"], env, app)
    assert started.returncode == 0, started.stderr
    assert json.loads(started.stdout.splitlines()[-1])["code"]
    trained = as_uid_1000([sys.executable, "-m", "mlp_demo", "train", "--hidden", "8", "--epochs", "1",
                           "--val-size", "100", "--batch-size", "64", "--device", "cpu"], env, app)
    assert trained.returncode == 0, trained.stderr
    assert (app / "checkpoints" / "model.safetensors").stat().st_uid == 1000


def test_the_server_starts_as_the_containers_user_and_its_class_boards_work(container, browser):
    from bench.browser import BLANK_PAD, body_has, free_port, new_page, pad
    image, env, app = container
    port = free_port()
    moved = {"--server.port": f"--server.port={port}", "--server.address": "--server.address=127.0.0.1"}
    command = [sys.executable, "-m", *(moved.get(a.split("=")[0], a) for a in image.cmd)]
    server = subprocess.Popen(["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups", *command],
                              env={"PATH": os.environ["PATH"], **env}, cwd=app,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        page = new_page(browser)
        for _ in range(120):
            try:
                page.goto(f"http://127.0.0.1:{port}")
                break
            except Exception:
                assert server.poll() is None, "the server exited"
                time.sleep(0.5)
        pad(page)
        body_has(page, BLANK_PAD, 60_000)
        body_has(page, "Start a class", 30_000)
        assert "unavailable" not in page.inner_text("body")
        page.close()
    finally:
        server.terminate()
        server.wait(10)

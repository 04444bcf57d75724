"""OpenSearch 3.x with the k-NN plugin, from Maven Central zips.

Notes that shaped this module (DESIGN.md section 3): the integ-test zip has no bundled JDK, so a
JDK 21+ is located and passed as OPENSEARCH_JAVA_HOME; 3.x loads a java agent by a relative path,
so the process starts in the OpenSearch home; the k-NN zip carries jars only, so indices use the
lucene engine; OpenSearch refuses to run as root, so under root it runs as an unprivileged
service user; plugins are installed into a home folder named by the plugin set, so changing the
set never mutates a home that a running node uses.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pwd
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

from vidsearch.core.settings import Settings
from vidsearch.ops.stack import maven
from vidsearch.ops.stack.errors import DownloadError, StackError
from vidsearch.ops.stack.java import find_java_home
from vidsearch.ops.stack.ownership import chown_tree
from vidsearch.ops.stack.ports import is_listening, port_of_url
from vidsearch.ops.stack.process import Launch, service_env
from vidsearch.ops.stack.services.base import Health

log = logging.getLogger(__name__)
DIST = "org.opensearch.distribution.integ-test-zip:opensearch:{v}:zip"
PLUGIN = "org.opensearch.plugin:{name}:{v}.0:zip"


def extract_zip(archive: Path, dest: Path) -> None:
    """zipfile drops Unix permissions; restore them (the bin/ scripts must stay executable)."""
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            path = Path(zf.extract(info, dest))
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                path.chmod(mode)


def node_name(node: int) -> str:
    """Node 1 keeps the single-node name (and so its folder and pid file); others are numbered."""
    return "opensearch" if node == 1 else f"opensearch-{node}"


class OpenSearchService:
    """One node; with several, every node is cluster-manager eligible and holds data, so any
    one of 3+ may fail (with 2, the one outside the voting configuration may)."""

    kind = "opensearch"

    def __init__(self, settings: Settings, node: int = 1, nodes: int = 1) -> None:
        self.settings = settings
        stack = settings.stack
        self.node, self.nodes = node, nodes
        self.name = node_name(node)
        self.version = stack.opensearch_version
        self.port = port_of_url(settings.opensearch.urls[0], self.kind) + (node - 1)
        self.transport_port = stack.opensearch_transport_port + (node - 1)
        plugin_key = hashlib.sha256(",".join(sorted(stack.opensearch_plugins)).encode()).hexdigest()[:8]
        self.home = stack.cache_dir / "opensearch" / f"{self.version}-{plugin_key}" / f"opensearch-{self.version}"
        self.marker = self.home.parent / ".installed.json"
        self.state = stack.state_dir / self.name

    def ports(self) -> dict[str, int]:
        return {"http": self.port, "transport": self.transport_port}

    def _java_home(self) -> Path:
        return find_java_home(self.name, 21, self.settings.stack.opensearch_java_home, prefer="highest")

    def install(self) -> None:
        if self.marker.exists():
            return
        stack = self.settings.stack
        downloads = stack.cache_dir / "downloads"
        archive = maven.fetch_artifact(self.name, DIST.format(v=self.version), downloads, stack.maven_repo)
        parent = self.home.parent
        shutil.rmtree(parent, ignore_errors=True)
        parent.mkdir(parents=True)
        extract_zip(archive, parent)
        if not (self.home / "modules" / "lang-painless").is_dir():
            raise StackError(self.name, f"{archive.name} lacks modules/lang-painless, which k-NN extends")
        env = service_env({"OPENSEARCH_JAVA_HOME": str(self._java_home())})
        installed, missing = [], {}
        for plugin in stack.opensearch_plugins:
            try:
                zip_path = maven.fetch_artifact(self.name, PLUGIN.format(name=plugin, v=self.version), downloads, stack.maven_repo)
            except DownloadError as exc:
                if plugin in stack.opensearch_required_plugins:
                    raise
                missing[plugin] = exc.message.splitlines()[0]
                log.warning("optional OpenSearch plugin unavailable plugin=%s reason=%s", plugin, missing[plugin])
                continue
            res = subprocess.run(
                [str(self.home / "bin" / "opensearch-plugin"), "install", "--batch", zip_path.as_uri()],
                cwd=self.home, env=env, capture_output=True, text=True, timeout=600,
            )
            if res.returncode != 0:
                raise StackError(self.name, f"installing plugin {plugin} failed", (res.stdout + res.stderr)[-3000:])
            installed.append(plugin)
        self.marker.write_text(json.dumps({"version": self.version, "plugins": installed, "missing": missing}))

    def missing_plugins(self) -> dict[str, str]:
        try:
            return json.loads(self.marker.read_text()).get("missing", {})
        except (OSError, ValueError):
            return {}

    def _scheme(self) -> str:
        return self.settings.opensearch.urls[0].split("://", 1)[0] if "://" in self.settings.opensearch.urls[0] else "http"

    def _service_user(self) -> str | None:
        """OpenSearch will not run as root: use (and if needed create) an unprivileged user."""
        if os.geteuid() != 0:
            return None
        user = self.settings.stack.service_user
        try:
            pwd.getpwnam(user)
        except KeyError:
            res = subprocess.run(
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user],
                capture_output=True, text=True,
            )
            if res.returncode != 0:
                raise StackError(self.name, f"cannot create service user {user!r}: {res.stderr.strip()}") from None
        return user

    def launch(self) -> Launch:
        conf, data, logs, tmp = (self.state / d for d in ("config", "data", "logs", "tmp"))
        for d in (data, logs, tmp):
            d.mkdir(parents=True, exist_ok=True)
        # The config is rebuilt by us on every launch: under root the service user owns the state
        # folder, and a link it planted in an old config must not redirect root's writes below.
        if conf.is_symlink() or conf.is_file():
            conf.unlink()
        shutil.rmtree(conf, ignore_errors=True)
        shutil.copytree(self.home / "config", conf)
        # jvm.options names logs/ and data relative to the home (read-only for us): point them
        # at the state folder; the agent path stays relative, as 3.x expects.
        options = (conf / "jvm.options").read_text()
        options = options.replace("file=logs/", f"file={logs}/").replace(":logs/", f":{logs}/")
        options = options.replace("ErrorFile=logs/", f"ErrorFile={logs}/").replace("HeapDumpPath=data", f"HeapDumpPath={data}")
        (conf / "jvm.options").write_text(options)
        settings_yml = {
            "cluster.name": "vidsearch-local",
            "node.name": f"vidsearch-node-{self.node}",
            "path.data": str(data),
            "path.logs": str(logs),
            "network.host": "127.0.0.1",
            "http.port": self.port,
            "transport.port": self.transport_port,
            **self._discovery(),
            "bootstrap.memory_lock": False,
            # A dev/CI disk is often nearly full; do not let watermarks block writes.
            "cluster.routing.allocation.disk.threshold_enabled": False,
            "action.auto_create_index": False,
        }
        (conf / "opensearch.yml").write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in settings_yml.items()))
        user = self._service_user()
        if user:
            entry = pwd.getpwnam(user)
            stack = self.settings.stack
            chown_tree(self.name, self.state, entry.pw_uid, entry.pw_gid, (stack.state_dir, stack.cache_dir))
        heap = self.settings.stack.opensearch_heap
        env = {
            "OPENSEARCH_JAVA_HOME": str(self._java_home()),
            "OPENSEARCH_PATH_CONF": str(conf),
            "OPENSEARCH_JAVA_OPTS": f"-Xms{heap} -Xmx{heap}",
            "OPENSEARCH_TMPDIR": str(tmp),
        }
        return Launch(argv=[str(self.home / "bin" / "opensearch")], cwd=self.home, env=env, user=user)

    def _discovery(self) -> dict[str, object]:
        if self.nodes == 1:
            return {"discovery.type": "single-node"}
        first = self.settings.stack.opensearch_transport_port
        return {
            "discovery.seed_hosts": [f"127.0.0.1:{first + i}" for i in range(self.nodes)],
            "cluster.initial_cluster_manager_nodes": [f"vidsearch-node-{i}" for i in range(1, self.nodes + 1)],
        }

    def _own_client(self) -> Any:
        """A client of this node alone, without retries: health checks want this node's answer now,
        not the cluster's through another node or after a back-off."""
        from vidsearch.plugins.opensearch.client import make_client

        own = self.settings.opensearch.model_copy(update={"url": f"{self._scheme()}://127.0.0.1:{self.port}"})
        return make_client(own, max_retries=0)

    def settle(self, timeout_s: float) -> str | None:
        """Wait until a freshly formed cluster is green. Every node answers healthy while the
        cluster is still yellow (the plugins' system indices get their replicas a moment after the
        nodes join), and a cluster handed over yellow starts its life without the redundancy it was
        built for. Returns why it is not green after `timeout_s`, or None."""
        if self.nodes == 1:
            return None  # a single node never places replicas: yellow is its settled state
        try:
            health = self._own_client().cluster.health(
                wait_for_status="green", wait_for_nodes=str(self.nodes), timeout=f"{max(1, int(timeout_s))}s",
                request_timeout=timeout_s + 10,
            )
        except Exception as exc:  # a client failure is reported, not raised: the nodes are up
            return f"cluster health request failed: {exc}"
        if health.get("timed_out") or health.get("status") != "green":
            return f"cluster {health.get('status')} after {timeout_s:.0f}s ({health.get('unassigned_shards')} unassigned shards)"
        return None

    def probe(self) -> Health:
        """This node's own answer: it is up, in a cluster whose health is green or yellow."""
        if not is_listening(self.port):
            return Health(False, error=f"nothing listens on 127.0.0.1:{self.port}")
        try:
            client = self._own_client()
            info = client.info(request_timeout=5)
            health = client.cluster.health(request_timeout=5)
            plugins = sorted({p["component"] for p in client.cat.plugins(format="json", request_timeout=5)})
        except Exception as exc:  # any client failure means "not healthy yet"
            return Health(False, error=f"request failed: {exc}")
        healthy = health.get("status") in ("green", "yellow") and health.get("number_of_nodes", 0) >= 1
        detail = {"plugins": plugins, "cluster_status": health.get("status"), "port": self.port,
                  "nodes": health.get("number_of_nodes"), "unassigned_shards": health.get("unassigned_shards")}
        if missing := self.missing_plugins():
            detail["missing_plugins"] = missing
        return Health(healthy, info["version"]["number"], detail, None if healthy else f"cluster {health.get('status')}")

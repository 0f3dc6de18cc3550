"""The shared models folder for anonymous visitors: ownership, quotas, eviction, broken files."""

import errno
import hashlib
import json
import time

import pytest

from mlp_demo import checkpoints
from mlp_demo.config import TrainConfig
from mlp_demo.model import MLP
from mlp_demo.server.limits import Limits
from mlp_demo.server.store import ModelStore, StoreError, upload_name

from helpers import crafted, hostile_files

CONFIG = TrainConfig(hidden=(16,))
SIZE = len(checkpoints.to_bytes(MLP(CONFIG), CONFIG, {}, 1.0))


def store_in(folder, present=("alice", "bob"), **limits):
    return ModelStore(folder, Limits(**limits), is_present=lambda v: v in present)


def save(store, name, visitor, seed=0):
    config = CONFIG.replace(seed=seed)
    return store.save(name, visitor, MLP(config), config, {"test_acc": 0.5}, 1.0)


def names(store):
    return [i.name for i in store.listing().models]


def test_a_visitor_cannot_replace_or_delete_another_visitors_model(tmp_path):
    store = store_in(tmp_path)
    path = save(store, "mine", "alice")
    before = path.read_bytes()
    with pytest.raises(StoreError, match="belongs to someone else"):
        save(store, "mine", "bob", seed=1)
    with pytest.raises(StoreError, match="not yours"):
        store.delete("mine", "bob")
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == [path.name]
    replaced = save(store, "mine", "alice", seed=2)  # the owner may replace it
    assert replaced != path and not path.exists()  # the old file goes with its record
    store.delete("mine", "alice")
    assert names(store) == ["default"] and list(tmp_path.iterdir()) == []


def test_files_are_named_by_their_content_and_carry_their_models_name(tmp_path):
    store = store_in(tmp_path)
    path = save(store, "mine", "alice")
    assert path.name == hashlib.sha256(path.read_bytes()).hexdigest() + ".safetensors"
    assert checkpoints.read_info(path).own_name == "mine"
    assert store.records.get("mine").file == path.name


def test_files_the_records_do_not_know_are_read_strictly_and_listed_at_start(tmp_path):
    save(store_in(tmp_path), "saved", "alice")  # records in memory: gone with the process
    crafted(tmp_path / "copied-in.safetensors", {"metrics": '{"test_acc": 0.8}'})
    crafted(tmp_path / "not a name!.safetensors")
    store = store_in(tmp_path)  # a restart
    assert names(store) == ["default", "copied-in", "saved"]
    assert store.owner("saved") is None and store.owner("copied-in") is None  # nobody's
    assert store.listing().unreadable == ["not a name!.safetensors"]
    assert (tmp_path / "copied-in.safetensors").exists()  # recorded where it is, not moved


def test_the_shipped_model_is_immutable(tmp_path):
    store = store_in(checkpoints.CHECKPOINT_DIR)
    before = checkpoints.DEFAULT_CHECKPOINT.read_bytes()
    for name in ("default", "DEFAULT"):
        with pytest.raises(ValueError, match="not a usable name"):
            save(store, name, "alice")
    with pytest.raises(StoreError):
        store.delete("default", "alice")
    assert checkpoints.DEFAULT_CHECKPOINT.read_bytes() == before


def test_models_written_before_a_restart_are_read_only(tmp_path):
    save(store_in(tmp_path), "old", "alice")
    store = store_in(tmp_path)  # a restarted server: nobody owns it now
    with pytest.raises(StoreError):
        save(store, "old", "alice")
    assert "old" in names(store)


def test_per_visitor_quota_on_files_and_bytes(tmp_path):
    store = store_in(tmp_path, session_max_files=2)
    save(store, "a1", "alice")
    save(store, "a2", "alice")
    with pytest.raises(StoreError, match="MLP_DEMO_SESSION_MAX_FILES"):
        save(store, "a3", "alice")
    save(store, "b1", "bob")  # others are not affected
    save(store, "a2", "alice", seed=1)  # replacing one's own model needs no new room
    tiny = store_in(tmp_path / "t", session_max_mb=1)
    with pytest.raises(StoreError, match="MLP_DEMO_SESSION_MAX_MB"):
        big = TrainConfig(hidden=(512,))
        tiny.save("big", "alice", MLP(big), big, {}, 1.0)


def test_a_full_store_evicts_the_oldest_models_of_visitors_who_left(tmp_path):
    present = {"alice", "bob", "carol"}
    store = store_in(tmp_path, present=present, store_max_files=3)
    save(store, "old", "alice")
    save(store, "newer", "alice")
    save(store, "bobs", "bob")
    with pytest.raises(StoreError, match="store is full"):
        save(store, "carols", "carol")  # everyone is still here: nothing may go
    present.discard("alice")
    save(store, "carols", "carol")
    assert sorted(names(store)) == ["bobs", "carols", "default", "newer"]


def test_many_tabs_of_one_visitor_cannot_exceed_the_store(tmp_path):
    store = store_in(tmp_path, present={f"tab{i}" for i in range(10)}, store_max_files=4,
                     session_max_files=10)
    saved = 0
    for i in range(10):
        try:
            save(store, f"m{i}", f"tab{i}")
            saved += 1
        except StoreError:
            pass
    assert saved == 4 and len(list(tmp_path.glob("*.safetensors"))) == 4


def test_stale_temporary_files_are_removed_at_start(tmp_path):
    (tmp_path / ".m.safetensors.abc.tmp").write_bytes(b"half a checkpoint")
    kept = save(store_in(tmp_path), "kept", "alice")
    assert names(store_in(tmp_path)) == ["default", "kept"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [kept.name]


def test_a_full_or_read_only_disk_is_a_message(tmp_path, monkeypatch):
    store = store_in(tmp_path)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(checkpoints, "write_atomic", full)
    with pytest.raises(StoreError, match="could not save the model .No space left"):
        save(store, "m", "alice")
    assert store.records.get("m") is None  # the name is free again


def test_broken_files_are_left_out_of_the_list_and_the_rest_listed(tmp_path):
    hostile_files(tmp_path)
    listing = store_in(tmp_path).listing()
    by_name = {i.name: i for i in listing.models}
    assert sorted(by_name) == ["bad-acc", "bad-metrics", "default", "good"]
    assert by_name["bad-metrics"].metrics == {} and by_name["bad-acc"].metrics == {}
    assert by_name["good"].metrics == {"test_acc": 0.9}
    assert sorted(listing.unreadable) == ["claims-big.safetensors", "huge-meta.safetensors",
                                          "truncated.safetensors"]


def test_a_model_above_the_servers_cap_is_not_listed_nor_uploaded(tmp_path):
    big = TrainConfig(hidden=(64,))
    crafted(tmp_path / "big.safetensors", config=big)
    store = store_in(tmp_path, max_params=1000)
    assert store.listing().unreadable == ["big.safetensors"]
    with pytest.raises(ValueError, match="at most 1,000"):
        store.add_upload("big.safetensors", (tmp_path / "big.safetensors").read_bytes(), "alice")


def test_headers_are_read_once_per_file_version(tmp_path, monkeypatch):
    store = store_in(tmp_path)
    save(store, "m", "alice")
    reads = []
    real = checkpoints.read_info
    monkeypatch.setattr(checkpoints, "read_info", lambda *a, **k: reads.append(a) or real(*a, **k))
    store.listing()
    store.listing()
    assert len(reads) == 2  # the shipped model and m, once each
    save(store, "m", "alice", seed=4)
    store.listing()
    assert len(reads) == 3


def test_uploads_are_rebuilt_and_saved_under_a_safe_name(tmp_path):
    store = store_in(tmp_path)
    source = crafted(tmp_path / "src.bin", {"metrics": '{"test_acc": 0.7, "x": 1}', "extra": "y"})
    path = store.add_upload("../../My model (2).safetensors", source.read_bytes(), "alice")
    assert path.parent == tmp_path and "My-model-2" in names(store)
    meta = json.loads(path.read_bytes()[8:8 + int.from_bytes(path.read_bytes()[:8], "little")])
    assert set(meta["__metadata__"]) == {"format", "config", "metrics", "train_seconds", "name"}
    assert meta["__metadata__"]["name"] == "My-model-2" and store.owner("My-model-2") == "alice"
    with pytest.raises(ValueError, match="not a safetensors"):
        store.add_upload("x.safetensors", b"\x80\x04 pickle", "alice")


@pytest.mark.parametrize("given, expected", [("a.safetensors", "a"), ("default.safetensors", "uploaded"),
                                             ("...", "uploaded"), ("x" * 80, "x" * 40)])
def test_upload_names(given, expected):
    assert upload_name(given) == expected


def test_the_listing_comes_from_the_records_not_the_folder(tmp_path, monkeypatch):
    from mlp_demo.server import store as store_module
    monkeypatch.setattr(store_module, "LISTING_TTL_S", 3600)  # however slow this machine is
    store = store_in(tmp_path)
    save(store, "m", "alice")
    first = store.listing()
    crafted(tmp_path / "later.safetensors")  # copied in while the server runs: known at a restart
    reads = []
    real = store.records.all
    monkeypatch.setattr(store.records, "all", lambda: reads.append(1) or real())
    assert store.listing() is first and reads == []  # asked on every stroke: kept a moment
    save(store, "n", "alice")  # this process's own save shows at once
    reads.clear()
    assert names(store) == ["default", "m", "n"] and reads == [1]


# -- owners in the database: several app processes, restarts (issue 20)
def test_two_processes_on_one_database_share_models_and_owners_across_a_restart(tmp_path, database_url):
    from mlp_demo.server import db
    from mlp_demo.server.records import ModelRecords
    folder = tmp_path / "shared"

    def process():  # what each app process builds at start
        engine = db.connect(database_url)
        return engine, ModelStore(folder, Limits(), records=ModelRecords(engine))
    engine_a, a = process()
    engine_b, b = process()
    save(a, "from-a", "alice")
    assert "from-a" in names(b) and b.owner("from-a") == "alice"  # listed, and loads, through B
    assert b.model(next(i for i in b.listing().models if i.name == "from-a")) is not None
    with pytest.raises(StoreError, match="belongs to someone else"):
        save(b, "from-a", "bob", seed=1)
    assert a.records.claim("racing", "alice") == "alice"  # A claimed it, not yet written
    with pytest.raises(StoreError, match="belongs to someone else"):
        save(b, "racing", "bob")  # B's save of the same name loses, before writing anything
    assert "racing" not in names(b)
    engine_a.dispose()  # A restarts
    engine_a, a = process()
    assert a.owner("from-a") == "alice"
    with pytest.raises(StoreError, match="not yours"):
        a.delete("from-a", "bob")
    b.delete("from-a", "alice")  # through the other process
    assert "from-a" not in names(a) and a.owner("from-a") is None
    for engine in (engine_a, engine_b):
        engine.dispose()


def test_owners_while_the_database_is_away_are_a_message_not_a_crash(tmp_path, monkeypatch):
    from mlp_demo.server import db
    from mlp_demo.server import store as store_module
    monkeypatch.setattr(store_module, "DOWN_RETRY_S", 3600)  # however slow this machine is
    from mlp_demo.server.records import ModelRecords
    engine = db.connect(f"sqlite:///{tmp_path / 'gone.sqlite3'}")
    store = ModelStore(tmp_path / "models", Limits(), records=ModelRecords(engine))
    save(store, "before", "alice")
    listed = names(store)
    engine.dispose()
    (tmp_path / "gone.sqlite3").unlink()
    (tmp_path / "gone.sqlite3").mkdir()  # nothing a database can open
    assert store.owner("anything") is None
    with pytest.raises(ValueError, match="database is not answering"):
        save(store, "later", "alice")
    store._listed = (-float("inf"), store._listed[1])  # the kept listing has expired
    assert names(store) == listed  # the last list the page had, not an error
    asked = []
    store.records.all = lambda: asked.append(1) or ModelRecords.all(store.records)
    for _ in range(5):  # every page's rerun: the database is not asked again for a while
        assert names(store) == listed
    assert asked == []


def test_presence_while_the_database_is_away_tries_once_per_interval(tmp_path, caplog):
    """Each try may wait out the connect timeout: a page's reruns must not each make one."""
    from sqlalchemy import create_engine

    from mlp_demo.server.records import Presence
    (tmp_path / "gone.sqlite3").mkdir()  # nothing a database can open
    now = [1000.0]
    presence = Presence(create_engine(f"sqlite:///{tmp_path / 'gone.sqlite3'}"), ttl_s=150,
                        clock=lambda: now[0])
    for _ in range(3):
        presence.seen("alice")
    assert caplog.text.count("presence not recorded") == 1
    assert presence.is_present("alice")  # nothing is evicted on a guess
    now[0] += Presence.WRITE_EVERY_S
    presence.seen("alice")
    assert caplog.text.count("presence not recorded") == 2


def test_a_version_2_store_keeps_its_models_and_owners(tmp_path, database_url):
    """Before content-named files, a model was <name>.safetensors and its record had no file:
    the first start of this version records the file under its owner."""
    from sqlalchemy import update

    from mlp_demo.server import db
    from mlp_demo.server.records import ModelRecords
    engine = db.connect(database_url)
    records = ModelRecords(engine)
    records.claim("old-one", "alice")  # a version-2 row: name and owner, no file
    with engine.begin() as conn:
        conn.execute(update(db.models).where(db.models.c.name == "old-one").values(file=None))
    checkpoints.save(tmp_path / "old-one.safetensors", MLP(CONFIG), CONFIG, {"test_acc": 0.5}, 1.0)
    store = ModelStore(tmp_path, Limits(), records=records)
    assert "old-one" in names(store) and store.owner("old-one") == "alice"
    save(store, "old-one", "alice", seed=3)  # its owner may still replace it
    assert not (tmp_path / "old-one.safetensors").exists()
    engine.dispose()


def test_eviction_asks_the_database_who_is_present_on_any_process(tmp_path, database_url):
    """Alice's page is open on another replica: this one must not evict her model."""
    from sqlalchemy import select

    from mlp_demo.server import db
    from mlp_demo.server.records import ModelRecords, Presence
    engine = db.connect(database_url)
    here, elsewhere = Presence(engine, ttl_s=150), Presence(engine, ttl_s=150)
    store = ModelStore(tmp_path, Limits(store_max_files=1), is_present=here.is_present,
                       records=ModelRecords(engine))
    elsewhere.seen("alice")
    save(store, "alices", "alice")
    with pytest.raises(StoreError, match="store is full"):
        save(store, "bobs", "bob")
    later = Presence(engine, ttl_s=150, clock=lambda: time.time() + 200)  # her page closed
    store.is_present = later.is_present
    save(store, "bobs", "bob")
    assert names(store) == ["default", "bobs"]
    later.seen("bob")  # a heartbeat also deletes those long gone
    with engine.connect() as conn:
        assert sorted(conn.execute(select(db.visitors.c.visitor)).scalars()) == ["bob"]
    engine.dispose()

"""`passos-magicos gitops`: each command changes exactly the intended lines of the manifests and
nothing else (compared line by line with difflib), says what it changed, is idempotent, writes
nothing with --dry-run, and refuses clearly (exit 2) when its target is missing."""

from __future__ import annotations

import difflib
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from passos_magicos import gitops
from tests.flows import cli

FIXTURES = Path(__file__).parent / "fixtures" / "k8s"
REPO_K8S = Path(__file__).resolve().parents[2] / "k8s"

DEPLOYMENT = "deployment.yaml"
CRONJOBS = "cronjob-train.yaml"
RELOAD_LINE = 39  # deployment.yaml: the pod template's reload-at annotation
MODEL_LINE = 40  # deployment.yaml: the pod template's model-version annotation
OUR_IMAGE_LINES = {DEPLOYMENT: [48, 52, 89], CRONJOBS: [21, 40]}

Replaced = list[tuple[int, str, str]]
Inserted = list[tuple[int, str]]


@pytest.fixture
def k8s(tmp_path: Path) -> Path:
    target = tmp_path / "k8s"
    shutil.copytree(FIXTURES, target)
    return target


def snapshot(directory: Path) -> dict[str, bytes]:
    return {
        path.relative_to(directory).as_posix(): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def line_changes(before: bytes, after: bytes) -> tuple[Replaced, Inserted]:
    """Replaced lines (number, old, new) and inserted lines (number in the new file, text);
    anything else (a deleted line, a block replaced by one of another size) fails."""
    old = before.decode("utf-8").splitlines(keepends=True)
    new = after.decode("utf-8").splitlines(keepends=True)
    replaced: Replaced = []
    inserted: Inserted = []
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            continue
        if op == "replace" and i2 - i1 == j2 - j1:
            replaced += [(i1 + k + 1, old[i1 + k], new[j1 + k]) for k in range(i2 - i1)]
        elif op == "insert":
            inserted += [(j1 + k + 1, new[j1 + k]) for k in range(j2 - j1)]
        else:
            pytest.fail(f"mudança inesperada ({op}): {old[i1:i2]!r} → {new[j1:j2]!r}")
    return replaced, inserted


def changes_by_file(before: dict[str, bytes], after: dict[str, bytes]) -> dict[str, Replaced]:
    assert before.keys() == after.keys()
    result: dict[str, Replaced] = {}
    for name, content in before.items():
        replaced, inserted = line_changes(content, after[name])
        assert not inserted, inserted
        if replaced:
            result[name] = replaced
    return result


def documents(path: Path) -> list[dict[str, object]]:
    return [doc for doc in YAML(typ="safe", pure=True).load_all(path.read_text()) if doc]


def images(directory: Path) -> dict[tuple[str, str], str]:
    """(document name, container name) → image, for every container of every manifest."""
    found: dict[tuple[str, str], str] = {}
    for path in sorted(directory.glob("*.yaml")):
        for doc in documents(path):
            spec = doc.get("spec") or {}
            assert isinstance(spec, dict)
            if "jobTemplate" in spec:
                spec = spec["jobTemplate"]["spec"]
            pod = (spec.get("template") or {}).get("spec") or {}
            for key in ("initContainers", "containers"):
                for container in pod.get(key, []):
                    name = doc["metadata"]["name"]  # type: ignore[index]
                    found[(str(name), container["name"])] = container["image"]
    return found


def pod_annotations(path: Path, name: str = "passos-magicos-api") -> dict[str, str]:
    for doc in documents(path):
        if doc.get("kind") == "Deployment" and doc["metadata"]["name"] == name:  # type: ignore[index]
            annotations: dict[str, str] = doc["spec"]["template"]["metadata"]["annotations"]  # type: ignore[index]
            return annotations
    raise AssertionError(name)


# ---------------------------------------------------------------------------------------------
# set-image


def test_set_image_changes_only_the_tag_of_our_images(k8s: Path) -> None:
    before = snapshot(k8s)
    result = cli("gitops", "set-image", "--tag", "v1.2.3", "--dir", str(k8s))
    changed = changes_by_file(before, snapshot(k8s))

    assert {name: [line for line, _, _ in rows] for name, rows in changed.items()} == (
        OUR_IMAGE_LINES
    )
    for rows in changed.values():
        for _, old, new in rows:
            old_ref = old.split("image:")[1].split("#")[0].strip().strip("'\"")
            repository = old_ref.split("@")[0]
            if repository.rfind(":") > repository.rfind("/"):
                repository = repository.rsplit(":", 1)[0]
            assert new == old.replace(old_ref, f"{repository}:v1.2.3")  # quotes, comment kept
    assert images(k8s) == {
        ("passos-magicos-api", "feature-store-init"): (
            "docker.io/passosmagicos/passos-magicos-jobs:v1.2.3"
        ),
        ("passos-magicos-api", "api"): "docker.io/passosmagicos/passos-magicos-api:v1.2.3",
        ("passos-magicos-api", "log-shipper"): "busybox:1.36",
        ("passos-magicos-dashboard", "dashboard"): "passosmagicos/passos-magicos-dashboard:v1.2.3",
        ("passos-magicos-train", "train"): "docker.io/passosmagicos/passos-magicos-jobs:v1.2.3",
        ("passos-magicos-monitoring", "monitor"): "passosmagicos/passos-magicos-jobs:v1.2.3",
    }
    out = result.stdout
    assert f"{k8s / DEPLOYMENT}:52  Deployment/passos-magicos-api, contêiner api: " in out
    assert "initContainer feature-store-init" in out and "CronJob/passos-magicos-train" in out
    assert out.rstrip().endswith("5 de 5 imagens atualizadas com a tag v1.2.3 em 2 arquivo(s)")


def test_set_image_is_idempotent(k8s: Path) -> None:
    cli("gitops", "set-image", "--tag", "v2.0.0", "--dir", str(k8s))
    once = snapshot(k8s)
    again = cli("gitops", "set-image", "--tag", "v2.0.0", "--dir", str(k8s))
    assert snapshot(k8s) == once
    assert again.stdout == "nada mudou: as 5 imagens já estão na tag v2.0.0\n"


def test_dry_run_prints_the_diff_of_the_real_run_and_writes_nothing(
    k8s: Path, tmp_path: Path
) -> None:
    twin = tmp_path / "twin"
    shutil.copytree(k8s, twin)
    before = snapshot(k8s)
    mtimes = {path: path.stat().st_mtime_ns for path in k8s.iterdir()}

    shown = cli("gitops", "set-image", "--tag", "v9", "--dir", str(k8s), "--dry-run")
    assert snapshot(k8s) == before
    assert {path: path.stat().st_mtime_ns for path in k8s.iterdir()} == mtimes
    assert "dry-run: nenhum arquivo foi gravado" in shown.stderr

    cli("gitops", "set-image", "--tag", "v9", "--dir", str(twin))
    expected: list[str] = []
    for name in sorted(before):
        expected += [
            line.rstrip("\n")
            for line in difflib.unified_diff(
                before[name].decode().splitlines(keepends=True),
                (twin / name).read_text().splitlines(keepends=True),
            )
            if line[:1] in "+-@" and not line.startswith(("---", "+++"))
        ]
    printed = [
        line
        for line in shown.stdout.splitlines()
        if line[:1] in "+-@" and not line.startswith(("---", "+++"))
    ]
    assert printed == expected
    assert f"--- a/{(k8s / CRONJOBS).as_posix()}" in shown.stdout


def test_set_image_with_a_registry_and_a_subset_of_images(k8s: Path) -> None:
    before = snapshot(k8s)
    cli(
        "gitops",
        "set-image",
        "--tag",
        "v3",
        "--dir",
        str(k8s),
        "--image",
        "docker.io/passosmagicos/passos-magicos-dashboard",  # full form matches the short one
        "--image",
        "passos-magicos-jobs",
        "--registry",
        "ghcr.io/outra-org/",
    )
    changed = changes_by_file(before, snapshot(k8s))
    assert {name: [row[0] for row in rows] for name, rows in changed.items()} == {
        DEPLOYMENT: [48, 89],
        CRONJOBS: [21, 40],
    }
    now = images(k8s)
    assert now[("passos-magicos-dashboard", "dashboard")] == (
        "ghcr.io/outra-org/passos-magicos-dashboard:v3"
    )
    assert (
        now[("passos-magicos-monitoring", "monitor")] == "ghcr.io/outra-org/passos-magicos-jobs:v3"
    )
    assert now[("passos-magicos-api", "api")] == "docker.io/passosmagicos/passos-magicos-api:0.1.0"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--image", "passos-magicos-worker"],
            "nenhum contêiner usa a imagem passos-magicos-worker",
        ),
        (["--image", "passos-magicos-api:1.0"], "nome de imagem inválido"),
        (["--tag=.v1"], "tag inválida"),
        (["--registry", "docker.io/PassosMagicos"], "registro inválido"),
    ],
)
def test_set_image_refuses_bad_targets_without_writing(
    k8s: Path, args: list[str], message: str
) -> None:
    before = snapshot(k8s)
    tag = [] if any(a.startswith("--tag") for a in args) else ["--tag", "v1"]
    result = cli("gitops", "set-image", *tag, "--dir", str(k8s), *args, expect=2)
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert snapshot(k8s) == before


def test_every_default_image_must_be_in_the_manifests(k8s: Path) -> None:
    (k8s / DEPLOYMENT).unlink()  # only the CronJobs (jobs image) are left
    result = cli("gitops", "set-image", "--tag", "v1", "--dir", str(k8s), expect=2)
    assert "passos-magicos-api, passos-magicos-dashboard" in result.stderr
    assert "passosmagicos/passos-magicos-jobs:0.1.0@sha256" in (k8s / CRONJOBS).read_text()


def test_missing_or_broken_manifest_folders(tmp_path: Path) -> None:
    missing = cli("gitops", "set-image", "--tag", "v1", "--dir", str(tmp_path / "nada"), expect=2)
    assert "pasta de manifestos não encontrada" in missing.stderr
    empty = tmp_path / "vazia"
    empty.mkdir()
    (empty / "LEIAME.md").write_text("sem manifestos\n")
    assert (
        "nenhum manifesto .yaml/.yml"
        in cli("gitops", "bump-reload", "--dir", str(empty), expect=2).stderr
    )
    broken = tmp_path / "quebrada"
    broken.mkdir()
    (broken / "ruim.yml").write_text("kind: Deployment\nmetadata: {name: [sem fim\n")
    result = cli("gitops", "set-model-version", "--version", "2", "--dir", str(broken), expect=2)
    assert "ruim.yml: YAML inválido" in result.stderr
    (broken / "ruim.yml").write_text("kind: Deployment\nkind: Service\n")  # duplicate key
    assert "YAML inválido" in cli("gitops", "bump-reload", "--dir", str(broken), expect=2).stderr
    (broken / "ruim.yml").write_bytes(b"kind: \xff\n")
    assert (
        "não é texto UTF-8" in cli("gitops", "bump-reload", "--dir", str(broken), expect=2).stderr
    )


# ---------------------------------------------------------------------------------------------
# bump-reload and set-model-version


def test_bump_reload_changes_only_the_pod_template_annotation(k8s: Path) -> None:
    before = snapshot(k8s)
    result = cli("gitops", "bump-reload", "--at", "2025-03-01T12:00:00-03:00", "--dir", str(k8s))
    changed = changes_by_file(before, snapshot(k8s))
    assert changed == {
        DEPLOYMENT: [
            (
                RELOAD_LINE,
                '        mlops.passos-magicos/reload-at: "2025-01-01T00:00:00Z"\n',
                '        mlops.passos-magicos/reload-at: "2025-03-01T15:00:00Z"\n',
            )
        ]
    }
    assert result.stdout.splitlines() == [
        f"{k8s / DEPLOYMENT}:{RELOAD_LINE}  Deployment/passos-magicos-api, anotação "
        "mlops.passos-magicos/reload-at: 2025-01-01T00:00:00Z → 2025-03-01T15:00:00Z",
        "mlops.passos-magicos/reload-at=2025-03-01T15:00:00Z no Deployment passos-magicos-api",
    ]
    again = cli("gitops", "bump-reload", "--at", "2025-03-01T15:00:00Z", "--dir", str(k8s))
    assert again.stdout.startswith("nada mudou: mlops.passos-magicos/reload-at já é")


def test_bump_reload_defaults_to_now_in_utc(k8s: Path) -> None:
    started = datetime.now(UTC).replace(microsecond=0)
    cli("gitops", "bump-reload", "--dir", str(k8s))
    value = pod_annotations(k8s / DEPLOYMENT)[gitops.RELOAD_ANNOTATION]
    assert isinstance(value, str) and value.endswith("Z")
    moment = datetime.fromisoformat(value)
    assert started <= moment <= datetime.now(UTC)
    cli("gitops", "bump-reload", "--at", "2025-03-01T12:00:00", "--dir", str(k8s))  # naive = UTC
    assert pod_annotations(k8s / DEPLOYMENT)[gitops.RELOAD_ANNOTATION] == "2025-03-01T12:00:00Z"
    bad = cli("gitops", "bump-reload", "--at", "amanhã", "--dir", str(k8s), expect=2)
    assert "data/hora inválida" in bad.stderr


def test_set_model_version_keeps_quotes_and_comment(k8s: Path) -> None:
    before = snapshot(k8s)
    cli("gitops", "set-model-version", "--version", "12", "--dir", str(k8s))
    assert changes_by_file(before, snapshot(k8s)) == {
        DEPLOYMENT: [
            (
                MODEL_LINE,
                "        mlops.passos-magicos/model-version: '1'   # versão em @production\n",
                "        mlops.passos-magicos/model-version: '12'   # versão em @production\n",
            )
        ]
    }
    assert pod_annotations(k8s / DEPLOYMENT)[gitops.MODEL_VERSION_ANNOTATION] == "12"
    once = snapshot(k8s)
    again = cli("gitops", "set-model-version", "--version", "12", "--dir", str(k8s))
    assert snapshot(k8s) == once and again.stdout.startswith("nada mudou")
    for bad in ("", "1 2", "-3"):
        refused = cli(
            "gitops", "set-model-version", f"--version={bad}", "--dir", str(k8s), expect=2
        )
        assert "versão do modelo inválida" in refused.stderr
    assert snapshot(k8s) == once


def test_annotations_need_the_api_deployment(k8s: Path) -> None:
    (k8s / DEPLOYMENT).unlink()
    before = snapshot(k8s)
    for command in (["bump-reload"], ["set-model-version", "--version", "3"]):
        result = cli("gitops", *command, "--dir", str(k8s), expect=2)
        assert "Deployment passos-magicos-api não encontrado" in result.stderr
    assert snapshot(k8s) == before


def edit_fixture(k8s: Path, old: str, new: str) -> bytes:
    path = k8s / DEPLOYMENT
    text = path.read_text()
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new))
    return path.read_bytes()


def test_a_missing_annotation_is_added_after_its_siblings(k8s: Path) -> None:
    before = edit_fixture(
        k8s, "        mlops.passos-magicos/model-version: '1'   # versão em @production\n", ""
    )
    cli("gitops", "set-model-version", "--version", "4", "--dir", str(k8s))
    replaced, inserted = line_changes(before, (k8s / DEPLOYMENT).read_bytes())
    # after `prometheus.io/scrape: "true"`, same indentation, quoted like its siblings
    assert (replaced, inserted) == ([], [(41, '        mlops.passos-magicos/model-version: "4"\n')])


def test_a_plain_number_is_quoted_so_kubernetes_reads_a_string(k8s: Path) -> None:
    before = edit_fixture(k8s, "model-version: '1'", "model-version: 1")
    cli("gitops", "set-model-version", "--version", "5", "--dir", str(k8s))
    replaced, _ = line_changes(before, (k8s / DEPLOYMENT).read_bytes())
    assert (
        replaced[0][2]
        == '        mlops.passos-magicos/model-version: "5"   # versão em @production\n'
    )
    # the same value as a YAML number is still rewritten: a number is refused by Kubernetes
    edit_fixture(k8s, 'model-version: "5"', "model-version: 5")
    cli("gitops", "set-model-version", "--version", "5", "--dir", str(k8s))
    assert pod_annotations(k8s / DEPLOYMENT)[gitops.MODEL_VERSION_ANNOTATION] == "5"


def test_annotations_block_is_created_when_absent(k8s: Path) -> None:
    before = (k8s / DEPLOYMENT).read_bytes()
    cli(
        "gitops",
        "bump-reload",
        "--deployment",
        "passos-magicos-dashboard",
        "--at",
        "2025-05-05T05:05:05Z",
        "--dir",
        str(k8s),
    )
    replaced, inserted = line_changes(before, (k8s / DEPLOYMENT).read_bytes())
    assert replaced == []
    assert inserted == [
        (86, "      annotations:\n"),  # right after `labels:` (line 85), before `spec:`
        (87, '        mlops.passos-magicos/reload-at: "2025-05-05T05:05:05Z"\n'),
    ]


def test_flow_style_annotations_get_the_new_pair(k8s: Path) -> None:
    edit_fixture(
        k8s,
        "      labels: {app.kubernetes.io/name: passos-magicos-dashboard}\n",
        "      labels: {app.kubernetes.io/name: passos-magicos-dashboard}\n      annotations: {}\n",
    )
    args = ["--deployment", "passos-magicos-dashboard", "--dir", str(k8s)]
    cli("gitops", "set-model-version", "--version", "8", *args)
    assert (
        '      annotations: {mlops.passos-magicos/model-version: "8"}\n'
        in (k8s / DEPLOYMENT).read_text()
    )
    cli("gitops", "bump-reload", "--at", "2025-01-02T03:04:05Z", *args)
    assert (
        '      annotations: {mlops.passos-magicos/model-version: "8", '
        'mlops.passos-magicos/reload-at: "2025-01-02T03:04:05Z"}\n'
    ) in (k8s / DEPLOYMENT).read_text()


# ---------------------------------------------------------------------------------------------
# formats: line endings, BOM, anchors, tags, end of file


def test_crlf_line_endings_and_bom_are_kept(k8s: Path) -> None:
    path = k8s / DEPLOYMENT
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes().replace(b"\n", b"\r\n"))
    before = path.read_bytes()
    cli("gitops", "set-image", "--tag", "v7", "--dir", str(k8s))
    cli("gitops", "bump-reload", "--at", "2025-01-01T01:01:01Z", "--dir", str(k8s))
    cli("gitops", "set-model-version", "--version", "7", "--dir", str(k8s))
    after = path.read_bytes()
    assert after.startswith(b"\xef\xbb\xbf")
    assert after.count(b"\r\n") == after.count(b"\n") == before.count(b"\n")
    replaced, inserted = line_changes(before[3:], after[3:])
    assert [row[0] for row in replaced] == [RELOAD_LINE, MODEL_LINE, 48, 52, 89]
    assert not inserted


POD = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: passos-magicos-api
spec:
  template:
    spec:
      containers:
        - name: api
          image: {api}
        - name: worker
          image: {worker}
    metadata:
      labels:
        app: api"""


def write_pod(k8s: Path, api: str, worker: str, before: str = "") -> Path:
    shutil.rmtree(k8s)
    k8s.mkdir()
    path = k8s / "pod.yml"
    path.write_text(before + POD.format(api=api, worker=worker))  # no newline at the end
    return path


def test_anchors_and_tags_are_kept(k8s: Path) -> None:
    path = write_pod(k8s, "&img docker.io/passosmagicos/passos-magicos-api:0.1.0", "*img")
    cli("gitops", "set-image", "--tag", "v2", "--image", "passos-magicos-api", "--dir", str(k8s))
    assert "image: &img docker.io/passosmagicos/passos-magicos-api:v2\n" in path.read_text()
    assert "image: *img\n" in path.read_text()

    path = write_pod(k8s, "!!str 'passos-magicos-api:1'", "busybox")
    cli("gitops", "set-image", "--tag", "v2", "--image", "passos-magicos-api", "--dir", str(k8s))
    assert "image: !!str 'passos-magicos-api:v2'\n" in path.read_text()


def test_an_anchor_shared_with_a_non_container_value_is_refused(k8s: Path) -> None:
    path = write_pod(
        k8s,
        "*img",
        "busybox",
        before="x-imagem: &img passos-magicos-api:1  # fora de um contêiner\n",
    )
    before = path.read_bytes()
    result = cli(
        "gitops",
        "set-image",
        "--tag",
        "v2",
        "--image",
        "passos-magicos-api",
        "--dir",
        str(k8s),
        expect=1,
    )
    assert "mudaria mais do que o pretendido" in result.stderr
    assert path.read_bytes() == before


def test_block_scalars_are_refused(k8s: Path) -> None:
    write_pod(k8s, "|\n            passos-magicos-api:1\n", "busybox")
    result = cli(
        "gitops",
        "set-image",
        "--tag",
        "v2",
        "--image",
        "passos-magicos-api",
        "--dir",
        str(k8s),
        expect=2,
    )
    assert "valor em bloco" in result.stderr


def test_insertion_at_the_end_of_a_file_without_newline(k8s: Path) -> None:
    path = write_pod(k8s, "passos-magicos-api:1", "busybox")
    before = path.read_bytes()
    cli("gitops", "set-model-version", "--version", "9", "--dir", str(k8s))
    replaced, inserted = line_changes(before + b"\n", path.read_bytes())
    assert replaced == []
    assert inserted == [
        (16, "      annotations:\n"),
        (17, '        mlops.passos-magicos/model-version: "9"\n'),
    ]


def test_plan_api_reports_changes_and_checks_edits(k8s: Path) -> None:
    plan = gitops.set_model_version(k8s, "3")
    assert [change.old for change in plan.changes] == ["1"]
    assert plan.changes[0].describe(k8s).startswith(f"{DEPLOYMENT}:{MODEL_LINE}  ")
    assert gitops.Change(k8s / "x.yaml", 1, "alvo", None, "2").describe(k8s) == (
        "x.yaml:1  alvo: (ausente) → 2"
    )
    assert plan.apply(dry_run=True).startswith(f"--- a/{(k8s / DEPLOYMENT).as_posix()}")
    assert pod_annotations(k8s / DEPLOYMENT)[gitops.MODEL_VERSION_ANNOTATION] == "1"
    plan.write()
    assert pod_annotations(k8s / DEPLOYMENT)[gitops.MODEL_VERSION_ANNOTATION] == "3"
    assert not list(k8s.glob(".*gitops-tmp"))


# ---------------------------------------------------------------------------------------------
# the project's real manifests (written in parallel; checked when they exist)


@pytest.fixture
def real_k8s(tmp_path: Path) -> Path:
    if not REPO_K8S.is_dir():
        pytest.skip("k8s/ ainda não existe neste checkout")
    target = tmp_path / "k8s"
    shutil.copytree(REPO_K8S, target)
    return target


def test_real_manifests_edit_only_the_intended_lines(real_k8s: Path) -> None:
    before = snapshot(real_k8s)
    # The real files already carry what the workflows set: a no-op must write nothing.
    current = gitops.set_image(real_k8s, "v0.0.0-teste")
    assert current.changes, "as imagens do projeto deveriam estar nos manifestos"
    annotations = pod_annotations(real_k8s / DEPLOYMENT)
    for key in (gitops.RELOAD_ANNOTATION, gitops.MODEL_VERSION_ANNOTATION):
        assert key in annotations, f"{key} ausente do template de pods da API"
    recorded = str(annotations[gitops.MODEL_VERSION_ANNOTATION])
    if gitops._MODEL_VERSION.fullmatch(recorded):  # the value already there: nothing to write
        same = cli("gitops", "set-model-version", "--version", recorded, "--dir", str(real_k8s))
        assert same.stdout.startswith("nada mudou")
    assert snapshot(real_k8s) == before

    cli("gitops", "set-image", "--tag", "v0.0.0-teste", "--dir", str(real_k8s))
    cli("gitops", "bump-reload", "--at", "2030-01-01T00:00:00Z", "--dir", str(real_k8s))
    cli("gitops", "set-model-version", "--version", "999", "--dir", str(real_k8s))
    changed = changes_by_file(before, snapshot(real_k8s))
    rows = [row for file_rows in changed.values() for row in file_rows]
    image_rows = [row for row in rows if "image:" in row[1]]
    annotation_rows = [row for row in rows if "image:" not in row[1]]
    assert len(image_rows) == len(current.changes)
    assert all(row[2].count("v0.0.0-teste") == 1 for row in image_rows)
    assert sorted(row[1].split(":")[0].strip() for row in annotation_rows) == sorted(
        [gitops.MODEL_VERSION_ANNOTATION, gitops.RELOAD_ANNOTATION]
    )
    annotations = pod_annotations(real_k8s / DEPLOYMENT)
    assert annotations[gitops.RELOAD_ANNOTATION] == "2030-01-01T00:00:00Z"
    assert annotations[gitops.MODEL_VERSION_ANNOTATION] == "999"

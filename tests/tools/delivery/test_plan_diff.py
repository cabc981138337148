"""The offline plan diff on constructed inventories, and its git-worktree plumbing."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tools.delivery.plan_diff import (
    MISSING,
    PlanDiffError,
    ResourceKey,
    Side,
    diff_inventories,
    flatten_inputs,
    format_value,
    main,
    plan_diff,
    render_markdown,
)

LT = "aws:ec2/launchTemplate:LaunchTemplate"
DEPLOY = "kubernetes:apps/v1:Deployment"


def res(type_: str, name: str, inputs: dict[str, Any], parent: str | None = None) -> dict[str, Any]:
    return {"type": type_, "name": name, "parent": parent, "inputs": inputs}


def base_inventory() -> list[dict[str, Any]]:
    return [
        res(
            LT,
            "gpu-lt",
            {"instanceType": "g5.xlarge", "metadataOptions": {"httpTokens": "required"}},
        ),
        res(
            DEPLOY,
            "svc",
            {
                "spec": {
                    "replicas": 1,
                    "template": {"spec": {"containers": [{"image": "a@sha256:1"}]}},
                }
            },
            parent="workload",
        ),
        res(
            "aws:secretsmanager/secretVersion:SecretVersion",
            "api-key",
            {"secretString": "[secret]"},
        ),
    ]


def test_identical_inventories_have_no_diff() -> None:
    diff = diff_inventories(base_inventory(), base_inventory())
    assert diff.empty
    assert diff.unchanged == 3
    assert "No change in declared resources" in render_markdown(
        diff, "dev", Side("main"), Side("head")
    )


def test_changed_input_is_reported_as_dotted_path_with_both_values() -> None:
    head = base_inventory()
    head[0]["inputs"]["instanceType"] = "g6.xlarge"
    head[1]["inputs"]["spec"]["template"]["spec"]["containers"][0]["image"] = "a@sha256:2"

    diff = diff_inventories(base_inventory(), head)

    assert not diff.added
    assert not diff.removed
    assert [
        (c.key.name, [(i.path, i.before, i.after) for i in c.changes]) for c in diff.changed
    ] == [
        ("gpu-lt", [("instanceType", "g5.xlarge", "g6.xlarge")]),
        ("svc", [("spec.template.spec.containers[0].image", "a@sha256:1", "a@sha256:2")]),
    ]
    assert diff.unchanged == 1


def test_added_and_removed_resources_and_inputs() -> None:
    head = [*base_inventory()[1:], res("aws:ecr/repository:Repository", "repo", {"name": "r"})]
    head[0]["inputs"]["spec"]["minReadySeconds"] = 5
    del head[0]["inputs"]["spec"]["replicas"]

    diff = diff_inventories(base_inventory(), head)

    assert [key.name for key, _ in diff.added] == ["repo"]
    assert [key.name for key, _ in diff.removed] == ["gpu-lt"]
    (change,) = diff.changed
    assert [(i.path, i.before, i.after) for i in change.changes] == [
        ("spec.minReadySeconds", MISSING, 5),
        ("spec.replicas", 1, MISSING),
    ]


def test_moving_a_resource_under_another_parent_is_remove_plus_add() -> None:
    head = base_inventory()
    head[1]["parent"] = "other"
    diff = diff_inventories(base_inventory(), head)
    assert [k.parent for k, _ in diff.added] == ["other"]
    assert [k.parent for k, _ in diff.removed] == ["workload"]


def test_type_change_of_equal_looking_values_counts() -> None:
    head = base_inventory()
    head[1]["inputs"]["spec"]["replicas"] = True  # True == 1 in Python, not in Pulumi
    (change,) = diff_inventories(base_inventory(), head).changed
    assert change.changes[0].path == "spec.replicas"


def test_flatten_quotes_keys_that_contain_dots_and_keeps_empty_containers() -> None:
    flat = flatten_inputs({"tags": {"kubernetes.io/role/elb": "1", "env": "dev"}, "x": [], "y": {}})
    assert flat == {
        'tags["kubernetes.io/role/elb"]': "1",
        "tags.env": "dev",
        "x": [],
        "y": {},
    }


def test_secrets_are_masked_even_if_the_plan_tool_leaked_one() -> None:
    head = base_inventory()
    head[2]["inputs"]["secretString"] = "hunter2-leaked"
    head[0]["inputs"]["userData"] = {"password": "pw-leaked"}
    markdown = render_markdown(
        diff_inventories(base_inventory(), head), "dev", Side("a"), Side("b")
    )
    assert "hunter2" not in markdown
    assert "pw-leaked" not in markdown
    assert markdown.count("`[secret]`") == 3  # before+after of the secret, after of the password


def test_values_are_escaped_and_shortened_for_one_table_cell() -> None:
    assert format_value("a|b") == '`"a\\|b"`'
    assert format_value("x`y") == '`` "x`y" ``'
    long = format_value("z" * 500)
    assert len(long) < 130
    assert long.endswith("…`")
    assert format_value(MISSING) == "*(not set)*"


def test_markdown_has_summary_first_then_sections() -> None:
    head = base_inventory()[:2]
    head[0]["inputs"]["instanceType"] = "g6.xlarge"
    markdown = render_markdown(
        diff_inventories(base_inventory(), head),
        "dev",
        Side("origin/main", "abc"),
        Side("working tree"),
    )
    lines = markdown.splitlines()
    assert lines[0] == "### Offline plan diff: stack `dev`"
    assert "**1 to update** · 0 to replace · 0 to create · 1 to delete · 1 unchanged" in lines[2]
    assert markdown.index("#### To update (1)") < markdown.index("#### To delete (1)")
    assert "`~` update **`gpu-lt`**" in markdown
    assert '| `instanceType` | `"g5.xlarge"` | `"g6.xlarge"` |' in markdown


@pytest.mark.parametrize(
    ("inventory", "message"),
    [
        ({"type": "x"}, "must be a JSON list"),
        (["nope"], "must be an object"),
        ([{"type": "t", "name": "n"}], "lacks ['inputs']"),
        ([{"type": "t", "name": "n", "inputs": []}], "inputs must be an object"),
        ([{"type": 1, "name": "n", "inputs": {}}], "must be strings"),
        ([res("t", "n", {}), res("t", "n", {})], "twice"),
        ([{**res("t", "n", {}), "protect": "yes"}], "protect must be true or false"),
    ],
)
def test_malformed_inventories_are_named(inventory: object, message: str) -> None:
    with pytest.raises(PlanDiffError, match=message.replace("[", r"\[").replace("]", r"\]")):
        diff_inventories(inventory, [])


def test_create_only_inputs_make_a_replace_and_others_an_update() -> None:
    head = base_inventory()
    deployment = head[1]["inputs"]
    deployment["spec"]["selector"] = {"matchLabels": {"app": "svc-v2"}}  # immutable in apps/v1
    deployment["spec"]["template"]["spec"]["containers"][0]["image"] = "a@sha256:2"
    head[0]["inputs"]["instanceType"] = "g6.xlarge"  # launch templates update in place

    diff = diff_inventories(base_inventory(), head)

    assert [(c.key.name, c.action, c.replacing) for c in diff.changed] == [
        ("gpu-lt", "update", ()),
        ("svc", "replace", ("spec.selector.matchLabels.app",)),
    ]
    markdown = render_markdown(diff, "dev", Side("a"), Side("b"))
    assert "**1 to update** · 1 to replace" in markdown
    assert "`+-` replace **`svc`**" in markdown
    assert "| `spec.selector.matchLabels.app` **forces replacement** |" in markdown
    # The image changes too, but only the selector forces the replacement.
    assert "| `spec.template.spec.containers[0].image` | " in markdown


def test_protect_is_shown_and_a_protected_delete_or_replace_is_called_out() -> None:
    base = base_inventory()
    base[0]["protect"] = True
    base[1]["protect"] = True
    head = copy.deepcopy(base[1:])  # gpu-lt (protected) is removed
    head[0]["inputs"]["metadata"] = {"name": "renamed"}  # metadata.name: replace
    head[1]["protect"] = True  # the secret version becomes protected

    diff = diff_inventories(base, head)
    markdown = render_markdown(diff, "prod", Side("a"), Side("b"))

    assert "`-` delete **`gpu-lt`**" in markdown
    assert "Pulumi refuses to delete a protected resource" in markdown
    assert "Pulumi refuses to replace a protected resource" in markdown
    version = next(c for c in diff.changed if c.key.name == "api-key")
    assert [(i.path, i.before, i.after) for i in version.changes] == [("protect", False, True)]
    assert version.action == "update"


def test_resource_key_label_mentions_parent_only_when_nested() -> None:
    assert ResourceKey("t", "n", None).label() == "**`n`** `t`"
    assert ResourceKey("t", "n", "p").label() == "**`n`** `t`, parent `p`"


# --- git worktree plumbing, against a throw-away repository with a stand-in plan tool ---------

FAKE_PLAN_TOOL = textwrap.dedent(
    """
    import json, sys
    stack = sys.argv[sys.argv.index("--stack") + 1]
    with open(f"stacks/{stack}.json") as f:
        print(json.dumps(json.load(f)))
    """
)


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


@pytest.fixture
def toy_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "tools").mkdir(parents=True)
    (repo / "stacks").mkdir()
    (repo / "tools" / "__init__.py").write_text("")
    (repo / "tools" / "plan.py").write_text(FAKE_PLAN_TOOL)
    (repo / "stacks" / "dev.json").write_text(json.dumps(base_inventory()))
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "base")
    return repo


def _worktrees(repo: Path) -> str:
    return subprocess.run(
        ["git", "worktree", "list"], cwd=repo, check=True, capture_output=True, text=True
    ).stdout


def test_working_tree_against_base_revision(toy_repo: Path) -> None:
    head = base_inventory()
    head[0]["inputs"]["instanceType"] = "g6.xlarge"
    (toy_repo / "stacks" / "dev.json").write_text(json.dumps(head))

    markdown = plan_diff(toy_repo, "dev", "main")

    assert "**1 to update** · 0 to replace · 0 to create · 0 to delete · 2 unchanged" in markdown
    assert "uncommitted changes" in markdown
    assert len(_worktrees(toy_repo).splitlines()) == 1, "the base worktree must be removed"


def test_two_revisions_and_a_base_without_plan_tool(toy_repo: Path) -> None:
    (toy_repo / "stacks" / "dev.json").write_text(json.dumps(base_inventory()[:1]))
    _git(toy_repo, "commit", "-q", "-am", "drop two")
    assert "0 to create · 2 to delete" in plan_diff(toy_repo, "dev", "main~1", head="main")

    _git(toy_repo, "rm", "-q", "tools/plan.py")
    _git(toy_repo, "commit", "-q", "-m", "no tool")
    markdown = plan_diff(toy_repo, "dev", "main", head="main~1")
    assert "has no plan tool" in markdown
    assert "**0 to update** · 0 to replace · 1 to create" in markdown


def test_unknown_revision_and_failing_plan_tool_are_clear_errors(
    toy_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--stack", "dev", "--base", "no-such-branch", "--repo", str(toy_repo)]) == 2
    assert "unknown git revision 'no-such-branch'" in capsys.readouterr().err

    out = toy_repo.parent / "nostack.md"
    argv = ["--stack", "nostack", "--base", "main", "--repo", str(toy_repo), "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "The plan could not be computed" in out.read_text()
    assert "FileNotFoundError" in out.read_text()
    assert "plan tool for stack 'nostack'" in err
    assert "FileNotFoundError" in err
    assert len(_worktrees(toy_repo).splitlines()) == 1


def test_cli_writes_markdown_file(toy_repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "dev.md"
    argv = ["--stack", "dev", "--base", "main", "--repo", str(toy_repo), "--out", str(out)]
    result = subprocess.run(
        [sys.executable, "-m", "tools.delivery.plan_diff", *argv],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert out.read_text() == result.stdout
    assert "No change in declared resources" in result.stdout

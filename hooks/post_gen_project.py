"""Remove what the answers did not select, then make the first git commit.

Needs neither the network nor DVC: the DVC config is a plain file of the template. Writes
only into the output folder, and takes back cookiecutter's replay copy of the answers
(forget_replay).
"""

import json
import os
import sys

# Cookiecutter's temporary folder: no modules, many files (see pre_gen_project.py).
if sys.path and sys.path[0] == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

import subprocess  # nosec B404 - runs git with fixed arguments

CI_PROVIDER = "{{ cookiecutter.ci_provider }}"
TRACKING = "{{ cookiecutter.tracking }}"
# Where cookiecutter found the template (JSON, so any path stays a plain string).
REPO_DIR = {{ cookiecutter.get("_repo_dir", "") | jsonify }}

# What each answer removes.
REMOVE = {
    ("ci_provider", "github"): [".gitlab-ci.yml"],
    ("ci_provider", "gitlab"): [".github"],
    ("ci_provider", "none"): [".gitlab-ci.yml", ".github"],
    ("tracking", "local"): ["deploy", "docs/team-stack.md", ".env.example"],
    ("tracking", "server"): [],
}


def remove(path):
    if os.path.isdir(path):
        for folder, _, files in os.walk(path, topdown=False):
            for name in files:
                os.remove(os.path.join(folder, name))
            os.rmdir(folder)
    elif os.path.exists(path):
        os.remove(path)


def git(*args):
    return subprocess.run(["git", *args], capture_output=True, text=True, check=False)  # nosec B603 B607


def next_steps():
    """The first commands for the chosen options, printed once after generation."""
    steps = [f"cd {os.getcwd()}", "make setup        # .venv with the hash-pinned lock (needs PyPI)"]
    if TRACKING == "server":
        steps += [
            "make team-env     # .env with new random passwords for the team stack",
            "make team-up      # PostgreSQL, MinIO and the MLflow server (needs docker compose)",
            "make team-check   # the tracking server and the DVC remote accept our credentials",
        ]
    steps += [
        "make pipeline     # prepare -> validate -> train -> evaluate, tracked in MLflow",
        "git add dvc.lock && git commit -m 'First run'   # the run to compare against",
        "make check        # docs, tests, security gates, controls",
    ]
    print("Next steps:\n" + "\n".join("  " + step for step in steps))


def forget_replay():
    """cookiecutter saves the answers of every run in ~/.cookiecutter_replay, outside the
    output folder. Unless the user has a cookiecutter config (where replay_dir is set),
    remove the record of this very run (same template, our output folder) and the folder if
    that leaves it empty: the answers stay only in the project."""
    home = os.path.expanduser("~")
    if os.environ.get("COOKIECUTTER_CONFIG") or os.path.exists(os.path.join(home, ".cookiecutterrc")):
        return
    folder = os.path.join(home, ".cookiecutter_replay")
    ours = {"_repo_dir": REPO_DIR, "_output_dir": os.path.dirname(os.getcwd())}
    try:
        names = os.listdir(folder)
    except OSError:  # no replay folder (or not readable): nothing of ours in it
        return
    for name in names:
        record = os.path.join(folder, name)
        try:
            with open(record, encoding="utf-8") as handle:
                saved = json.load(handle)["cookiecutter"]
            if all(saved.get(key) == value for key, value in ours.items()):
                os.remove(record)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
    try:
        if os.path.isdir(folder) and not os.listdir(folder):
            os.rmdir(folder)
    except OSError:  # not ours to fix: it only stays
        pass


def first_commit():
    try:
        if git("init", "--quiet", "--initial-branch=main").returncode != 0:
            git("init", "--quiet")  # git older than 2.28
    except FileNotFoundError:
        print("git is not installed: run 'git init' and commit when it is.")
        return
    # One lightly compressed pack instead of a file per object (for this command only):
    # the first commit takes a third of the time.
    git("-c", "core.bigFileThreshold=1", "-c", "pack.compression=1", "add", "--all")
    lines = git("config", "--get-regexp", r"^user\.(name|email)$").stdout.splitlines()
    identity = {key for key, _, value in (line.partition(" ") for line in lines) if value.strip()}
    if identity != {"user.name", "user.email"}:
        print("git has no user.name/user.email: files are staged; set them and run 'git commit'.")
        return
    done = git("-c", "maintenance.auto=false", "commit", "--quiet", "--no-verify",
               "-m", "Initial commit from the secure ML template")
    if done.returncode == 0:
        print("Created a git repository with the first commit.")
    else:
        print(f"git commit failed ({done.stderr.strip()}); files are staged, commit them yourself.")


if __name__ == "__main__":
    for path in REMOVE[("ci_provider", CI_PROVIDER)] + REMOVE[("tracking", TRACKING)]:
        remove(path)
    first_commit()
    forget_replay()
    next_steps()

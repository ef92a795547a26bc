#!/usr/bin/env bash
# Remove what the answers did not select, then make the first git commit.
# Needs neither the network nor DVC (the DVC config is a plain file of the template). A shell
# script because it only removes files and runs git: it starts in a few milliseconds.
set -u

# What each answer removes (the answers were checked by pre_gen_project.py).
case "{{ cookiecutter.ci_provider }}" in
  github) rm -f .gitlab-ci.yml ;;
  gitlab) rm -rf .github ;;
  none) rm -rf .gitlab-ci.yml .github ;;
esac
case "{{ cookiecutter.tracking }}" in
  local) rm -rf deploy docs/team-stack.md .env.example ;;
  server) ;;
esac

if ! command -v git >/dev/null 2>&1; then
  echo "git is not installed: run 'git init' and commit when it is."
  exit 0
fi
git init --quiet --initial-branch=main 2>/dev/null || git init --quiet
# One lightly compressed pack instead of a file per object (for this command only): the
# first commit takes a third of the time.
git -c core.bigFileThreshold=1 -c pack.compression=1 add --all
if [ -z "$(git config user.name)" ] || [ -z "$(git config user.email)" ]; then
  echo "git has no user.name/user.email: files are staged; set them and run 'git commit'."
  exit 0
fi
if error=$(git commit --quiet --no-verify -m "Initial commit from the secure ML template" 2>&1); then
  echo "Created a git repository with the first commit."
else
  echo "git commit failed (${error}); files are staged, commit them yourself."
fi

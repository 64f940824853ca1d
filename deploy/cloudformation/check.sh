#!/usr/bin/env bash
# Checks the CloudFormation templates of deploy/cloudformation/:
#
#   1. cfn-lint on every template (*.yaml, *.yml, *.json, *.template): any error or warning fails. cfn-lint from PATH
#      when there is one; otherwise cfn-lint 1.58.0 is installed from PyPI into a throwaway venv, removed at exit.
#   2. The user data of each launch template, rendered with placeholder values for its ${...}: it must start with
#      #cloud-config and parse as YAML, its /etc/plumb/agent.yaml must parse, and its shell scripts must pass sh -n
#      (cfn-lint sees the user data as an opaque string). Needs a python3 that can import cfnlint (the venv's does).
#   3. The systemd unit written by the user data of plumb-agent.yaml and of deploy/cloud-init/plumb-agent.yaml is
#      deploy/systemd/plumb-agent.service, byte for byte.
#
# Usage: deploy/cloudformation/check.sh         (needs python3 with venv and pip, and PyPI, when cfn-lint is missing)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cfn_lint_version=1.58.0

work=""
cleanup() { if [ -n "$work" ]; then rm -rf "$work"; fi; }
trap cleanup EXIT

if command -v cfn-lint >/dev/null 2>&1; then
    cfn_lint=cfn-lint
    python=python3
    echo "check: $(cfn-lint --version) from PATH (without one, this script installs cfn-lint $cfn_lint_version)"
else
    work=$(mktemp -d /tmp/plumb-cfn-lint.XXXXXX)
    echo "check: installing cfn-lint $cfn_lint_version into $work/venv"
    python3 -m venv "$work/venv"
    "$work/venv/bin/pip" install --quiet --disable-pip-version-check "cfn-lint==$cfn_lint_version"
    cfn_lint="$work/venv/bin/cfn-lint"
    python="$work/venv/bin/python"
    echo "check: $("$cfn_lint" --version)"
fi

templates=()
for file in "$here"/*.yaml "$here"/*.yml "$here"/*.json "$here"/*.template; do
    if [ -f "$file" ]; then templates+=("$file"); fi
done
if [ ${#templates[@]} -eq 0 ]; then
    echo "check: no template in $here" >&2
    exit 1
fi

failed=0

# 1. cfn-lint. Its exit status is a bit mask: 2 errors, 4 warnings, 8 informational (reported, not failed on);
# 1 is cfn-lint's own failure.
status=0
"$cfn_lint" -- "${templates[@]}" || status=$?
if [ $((status & 7)) -ne 0 ]; then
    echo "check: cfn-lint found errors or warnings (exit status $status)" >&2
    failed=1
else
    echo "check: cfn-lint: no error, no warning in ${#templates[@]} template(s)"
fi

# 2. The rendered user data.
if "$python" -c 'import cfnlint.decode, yaml' >/dev/null 2>&1; then
    if ! "$python" - "${templates[@]}" <<'PYTHON'
import re
import subprocess
import sys
import tempfile

import yaml
from cfnlint.decode import decode

ok = True


def fail(where, message):
    global ok
    ok = False
    print(f"check: {where}: {message}", file=sys.stderr)


def placeholder(name, parameters):
    """A value for ${name}: the parameter's default, else a plausible stand-in."""
    pseudo = {"AWS::Region": "eu-west-1", "AWS::AccountId": "123456789012", "AWS::Partition": "aws",
              "AWS::StackName": "plumb-agents", "AWS::URLSuffix": "amazonaws.com"}
    if name in pseudo:
        return pseudo[name]
    default = parameters.get(name, {}).get("Default")
    if default not in (None, ""):
        return str(default)
    return {"CollectorUrl": "https://collector.internal:7470",
            "AgentBinaryUrl": "https://downloads.example.com/plumb-agent",
            "AgentBinarySha256": "0" * 64,
            "EnrollmentTokenSecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:plumb/enrollment-AbCdEf",
            "EnrollmentTokenKmsKeyArn": "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "CollectorCaParameterName": "/plumb/collector-ca"}.get(name, "PLACEHOLDER-" + name.replace(":", "-"))


def render(value, parameters, branch, variables=None):
    """A string for an intrinsic function's value: Fn::If takes `branch` (1 true, 2 false), Fn::Sub substitutes."""
    variables = variables or {}
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        (function, argument), = value.items()
        if function == "Fn::If":
            return render(argument[branch], parameters, branch, variables)
        if function == "Ref":
            return placeholder(argument, parameters)
        if function == "Fn::Select":
            index, items = argument
            items = render(items, parameters, branch, variables)
            if isinstance(items, list) and 0 <= int(index) < len(items):
                return items[int(index)]
            return "PLACEHOLDER-{select}"
        if function == "Fn::Split":
            separator, text = argument
            return render(text, parameters, branch, variables).split(separator)
        if function == "Fn::Sub":
            text, own = (argument, {}) if isinstance(argument, str) else argument
            rendered = {name: render(v, parameters, branch, variables) for name, v in own.items()}

            def substitute(match):
                name = match.group(1)
                if name.startswith("!"):
                    return "${" + name[1:] + "}"
                if name in rendered:
                    return str(rendered[name])
                return placeholder(name, parameters)

            return re.sub(r"\$\{([^}]+)\}", substitute, text)
    return f"PLACEHOLDER-{value!r}"


def sh_syntax(where, script):
    with tempfile.NamedTemporaryFile("w", suffix=".sh") as handle:
        handle.write(script)
        handle.flush()
        result = subprocess.run(["sh", "-n", handle.name], capture_output=True, text=True)
        if result.returncode != 0:
            fail(where, "sh -n: " + result.stderr.strip())


for path in sys.argv[1:]:
    template, matches = decode(path)
    if template is None:
        fail(path, "cannot be decoded (cfn-lint says why)")
        continue
    parameters = template.get("Parameters", {})
    for name, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::EC2::LaunchTemplate":
            continue
        user_data = resource.get("Properties", {}).get("LaunchTemplateData", {}).get("UserData")
        if user_data is None:
            continue
        if isinstance(user_data, dict) and "Fn::Base64" in user_data:
            user_data = user_data["Fn::Base64"]
        for branch, label in ((1, "conditions true"), (2, "conditions false")):
            where = f"{path}: {name} user data ({label})"
            text = render(user_data, parameters, branch)
            if "PLACEHOLDER-{" in text:
                fail(where, "an intrinsic function this check cannot render")
            if not text.startswith("#cloud-config\n"):
                fail(where, "does not start with #cloud-config")
                continue
            try:
                config = yaml.safe_load(text)
            except yaml.YAMLError as error:
                fail(where, f"not YAML: {error}")
                continue
            if len(text.encode()) > 16384:
                fail(where, f"{len(text.encode())} bytes; EC2 takes at most 16384 bytes of user data")
            files = {entry.get("path"): entry for entry in config.get("write_files", [])}
            agent = files.get("/etc/plumb/agent.yaml")
            if agent is None:
                fail(where, "writes no /etc/plumb/agent.yaml")
            else:
                try:
                    settings = yaml.safe_load(agent.get("content", ""))
                    if not settings.get("collector", {}).get("url", "").startswith("https://"):
                        fail(where, "agent.yaml: collector.url is not https://")
                except (yaml.YAMLError, AttributeError) as error:
                    fail(where, f"agent.yaml is not a YAML mapping: {error}")
            for file_path, entry in files.items():
                if entry.get("content", "").startswith("#!/bin/sh"):
                    sh_syntax(f"{where}: {file_path}", entry["content"])
            for index, command in enumerate(config.get("runcmd", [])):
                if isinstance(command, str):
                    sh_syntax(f"{where}: runcmd[{index}]", command)

sys.exit(0 if ok else 1)
PYTHON
    then
        failed=1
    else
        echo "check: the launch templates' user data renders to cloud-config, with a YAML agent.yaml and shell that parses"
    fi
else
    echo "check: $python cannot import cfnlint and yaml: the rendered user data is not checked"
fi

# 3. The unit in the user data is the shipped unit.
# unit_in FILE: the content block after "path: /etc/systemd/system/plumb-agent.service", without its indentation.
unit_in() {
    awk '
        state == 0 && /path: \/etc\/systemd\/system\/plumb-agent\.service[[:space:]]*$/ { state = 1; next }
        state == 1 && /content: \|[[:space:]]*$/ { state = 2; next }
        state == 2 {
            if ($0 ~ /^[[:space:]]*$/) { blanks++; next }
            match($0, /^ */)
            if (indent == 0) indent = RLENGTH
            if (RLENGTH < indent) exit
            for (; blanks > 0; blanks--) print ""
            print substr($0, indent + 1)
        }' "$1"
}
for file in "$here/plumb-agent.yaml" "$repo/deploy/cloud-init/plumb-agent.yaml"; do
    if [ ! -f "$file" ]; then continue; fi
    if ! diff -u --label "deploy/systemd/plumb-agent.service" --label "the unit in ${file#"$repo"/}" \
        "$repo/deploy/systemd/plumb-agent.service" <(unit_in "$file") >&2; then
        echo "check: the unit in ${file#"$repo"/} is not deploy/systemd/plumb-agent.service; copy it again" >&2
        failed=1
    else
        echo "check: the unit in ${file#"$repo"/} is deploy/systemd/plumb-agent.service"
    fi
done

if [ "$failed" != 0 ]; then
    echo "check: failed" >&2
    exit 1
fi
echo "check: passed"

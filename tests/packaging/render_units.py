#!/usr/bin/python3
"""render_units.py ROLES_DIR BIN_DIR OUT_DIR - renders each role's
templates/*.service.j2 with the roles' defaults and example values, as the
playbook would, without ansible: jinja2 plus the one ansible filter the
units use (regex_replace). Two variants per unit: the defaults (the
balancer on port 80: CAP_NET_BIND_SERVICE) and unprivileged ports."""
import glob
import os
import re
import sys

import jinja2
import yaml


def regex_replace(value, pattern, repl=""):
    return re.sub(pattern, repl, str(value))


def resolve(env, values):
    """Renders string values that refer to others until nothing changes."""
    for _ in range(10):
        changed = False
        for k, v in values.items():
            if isinstance(v, str) and "{{" in v:
                out = env.from_string(v).render(values)
                if out.startswith("[") and out.endswith("]"):
                    out = yaml.safe_load(out)
                changed |= out != v
                values[k] = out
        if not changed:
            return values
    raise SystemExit("variables refer to each other in a loop")


def main():
    roles, bin_dir, out = sys.argv[1:4]
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters["regex_replace"] = regex_replace
    base = {}
    for f in sorted(glob.glob(os.path.join(roles, "*/defaults/main.yml"))):
        base.update(yaml.safe_load(open(f)) or {})
    base.update({
        "ansible_managed": "Ansible managed (rendered by render_units.py)",
        "inventory_hostname": "cache-a",
        "ansible_default_ipv4": {"address": "10.0.0.11"},
        "playbook_dir": "/nonexistent",
        "fulcrum_prefix": os.path.dirname(bin_dir),
        "fulcrum_bin_dir": bin_dir,
    })
    variants = {
        "default": {},
        "highports": {"fulcrum_balancer_listen": "0.0.0.0:8000",
                      "fulcrum_cache_port": 8080, "fulcrum_agent_listen": "10.0.0.11:7779"},
    }
    os.makedirs(out, exist_ok=True)
    n = 0
    for name, extra in variants.items():
        values = resolve(env, dict(base, **extra))
        for t in sorted(glob.glob(os.path.join(roles, "*/templates/*.service.j2"))):
            unit = os.path.basename(t)[:-3]
            text = env.from_string(open(t).read()).render(values)
            d = os.path.join(out, name)
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, unit), "w") as f:
                f.write(text)
            n += 1
    print(f"rendered {n} units")


main()

#!/usr/bin/env python3
"""Writes every PromQL expression of a Grafana dashboard as a recording rule, so that
`promtool check rules` parses them: `check-exprs.py disruptor.json > /tmp/x.yml`."""
import json
import sys

dashboard = json.load(open(sys.argv[1]))
exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
if not exprs:
    sys.exit("no expressions found")
print("groups:\n  - name: dashboard\n    rules:")
for i, expr in enumerate(exprs):
    print(f"      - record: dashboard:panel_{i}\n        expr: {json.dumps(expr)}")

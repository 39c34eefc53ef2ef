#!/usr/bin/env bash
# Prints the module's packages that have tests, split by whether their tests start the test bed
# (they import test/framework): `hack/packages.sh bed` or `hack/packages.sh unit`. Fails when
# `go list` fails, so a broken package can never shrink the test run silently.
set -euo pipefail
cd "$(dirname "$0")/.."
want=${1:?usage: hack/packages.sh bed|unit}
module=$(go list -m)
listing=$(go list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}} {{join .TestImports " "}} {{join .XTestImports " "}}{{end}}' ./...)
while read -r pkg imports; do
  [ -n "$pkg" ] || continue
  case " $imports " in
    *" $module/test/framework "*) kind=bed ;;
    *) kind=unit ;;
  esac
  [ "$kind" = "$want" ] && echo "$pkg"
done <<< "$listing"
exit 0

#!/usr/bin/env bash
# The one command for translations: extracts every marked message from the code
# (pybabel extract), merges it into each language's catalog (pybabel update) and
# compiles the catalogs the agent and collector load with the standard library's
# gettext (pybabel compile). Run it after changing any text marked with tr/trn/N_,
# translate what it reports as untranslated in the .po file, run it again and
# commit both the .po and the .mo. CI runs it and fails if anything changed.
set -euo pipefail
cd "$(dirname "$0")/.."
pybabel=${PYBABEL:-.venv/bin/pybabel}
locale=agent/dcguard/common/locale
template=$(mktemp --suffix=.pot)
trap 'rm -f "$template"' EXIT

# Keywords: tr(message, **values); trn(singular, plural, count, **values); N_(constant).
"$pybabel" -q extract -F i18n/babel.cfg -k tr -k trn:1,2 -k N_ --no-default-keywords \
    --sort-by-file --no-wrap --project=dcguard --copyright-holder="dcguard authors" \
    -o "$template" agent collector
# The template is not kept, and the catalogs keep their creation date: a run with
# no change in the text changes no file (CI runs this and compares the tree).
# No fuzzy matching: a guessed translation of a changed sentence is worse than the
# English fallback, and tests/test_i18n.py names every message left untranslated.
for lang in vi; do
    "$pybabel" -q update -D dcguard -i "$template" -d "$locale" -l "$lang" --init-missing \
        --no-fuzzy-matching --no-wrap --ignore-obsolete --ignore-pot-creation-date
done
"$pybabel" -q compile -D dcguard -d "$locale"

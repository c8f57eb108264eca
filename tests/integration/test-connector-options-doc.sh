#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The option table of each connector type is the only schema of its source options: what
# `dpipe-connector-TYPE --list-options` prints (and --help lists) must be what the SOURCE OPTIONS
# section of man/dpipe-connector-TYPE.8 documents, name for name, with the same defaults where the
# page states one.
source "$(dirname "$0")/lib.sh"
for t in tcp http file; do
        command -v "dpipe-connector-$t" >/dev/null || { dp_log "SKIP: dpipe-connector-$t not built"; exit 77; }
done

for t in tcp http file; do
        page="$SOURCE_DIR/man/dpipe-connector-$t.8"
        table=$("dpipe-connector-$t" --list-options) || dp_fail "dpipe-connector-$t --list-options failed"
        [ -n "$table" ] || dp_fail "dpipe-connector-$t --list-options printed nothing"
        from_table=$(awk '{print $1}' <<<"$table" | sort)
        # The items of SOURCE OPTIONS: ".BI name= VALUE" / ".BR name= a | b" lines, up to the next .SH.
        from_page=$(sed -n '/^\.SH SOURCE OPTIONS/,/^\.SH /p' "$page" |
                sed -n 's/^\.B[IR]\{0,1\} \([a-z_]*\)=.*/\1/p' | sort -u)
        dp_assert_eq "$from_table" "$from_page" "options of dpipe-connector-$t: --list-options vs $page"
        # --help shows the same table.
        help=$("dpipe-connector-$t" --help)
        while read -r line; do
                grep -qF -- "$line" <<<"$help" || dp_fail "dpipe-connector-$t --help lacks the row: $line"
        done <<<"$table"
        # Each default the page states ("default N" / "default \fBX\fR") is the table's.
        while read -r name type default rest; do
                [ "$default" = "-" ] || [ "$default" = "(required)" ] && continue
                item=$(sed -n '/^\.SH SOURCE OPTIONS/,/^\.SH /p' "$page" |
                        awk -v n="$name" '/^\.TP/{p=0} $0 ~ "^\\.B[IR]? "n"=" {p=1} p')
                stated=$(sed -n 's/.*[Dd]efault \(\\fB\)\{0,1\}\([A-Za-z0-9]*\).*/\2/p' <<<"$item" | head -n1)
                [ -z "$stated" ] || [ "$stated" = "$default" ] ||
                        dp_fail "dpipe-connector-$t: $name defaults to $default, the man page says $stated"
        done <<<"$table"
done
dp_log "PASS"

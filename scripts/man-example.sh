#!/bin/bash
# The example program of a man page, as C:  scripts/man-example.sh PAGE
#
# Prints the lines between the page's '.\" SRC BEGIN' and '.\" SRC END'
# comments (the man-pages convention for a program's source), without the
# macro lines (.EX, .EE), and with the roff escapes those programs use
# turned back into C: \- is -, \e is \, \(aq is ', and a line of only \& is
# empty.  PAGE may be gzipped (an installed page).  Exits 1 if the page has
# no such block.
set -euo pipefail

page=${1:?usage: $0 PAGE}
case $page in
*.gz) page_text() { zcat -- "$page"; } ;;
*) page_text() { cat -- "$page"; } ;;
esac
page_text | awk '
	/^\.\\" SRC BEGIN/ { inside = 1; found = 1; next }
	/^\.\\" SRC END/ { inside = 0; next }
	inside && /^\./ { next }
	inside {
		gsub(/\\-/, "-")
		gsub(/\\\(aq/, "\047")
		gsub(/\\e/, "\\")
		if ($0 == "\\&")
			$0 = ""
		print
	}
	END { exit !found }'

#!/bin/bash
# Print the installed kernels we build and test against, one per line:
# every 6.1.* and 6.12.* that has both /boot/vmlinuz-KVER and headers.
# Optional arguments restrict the series: `kernels.sh 6.12` or `kernels.sh 6.1 6.12`;
# a full version (6.12.117+deb12-amd64) names one kernel.
set -euo pipefail

series=("$@")
[ ${#series[@]} -gt 0 ] || series=(6.1 6.12)

for s in "${series[@]}"; do
	# "6.1.*" does not match 6.12.x: the dot after the series is literal.
	for dir in /usr/lib/modules/"$s" /usr/lib/modules/"$s".*; do
		kver=${dir##*/}
		if [ -f "/boot/vmlinuz-$kver" ] && [ -d "$dir/build" ]; then
			echo "$kver"
		fi
	done
done | sort -uV

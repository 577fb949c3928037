#!/bin/sh
# Capture the vTPM test vectors of this directory from real boots: QEMU (TCG) + swtpm (TPM2,
# sha256 and sha384 banks) + OVMF direct kernel boot of initrd.cpio, whose /init (init.c) dumps
# the TCG2 event log and the PCRs to a second serial port. See README.md.
#
#   capture.sh [--rebuild-initrd] [NAME...]     (default: every vector below)
#
# Inputs: built:REL is $CVM_BUILT_OUT/REL (default <repo>/out/cvm-test, `cargo xtask
# build-image`), fixture:ID is $CVM_FIXTURES/ID (default ~/.cache/cvm-image/fixtures,
# `cargo xtask fixtures`). Needs qemu-system-x86_64, swtpm, swtpm_setup, python3; with
# --rebuild-initrd also gcc and the kernel tree's tools/include/nolibc ($NOLIBC).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../../.." && pwd)
built=${CVM_BUILT_OUT:-$repo/out/cvm-test}
fixtures=${CVM_FIXTURES:-$HOME/.cache/cvm-image/fixtures}
nolibc=${NOLIBC:-/var/tmp/cvm-build/kernel/src/tools/include/nolibc}
work=${VTPM_CAPTURE_WORK:-/var/tmp/vtpm-capture}

# name|firmware|kernel|initrd|memory MiB|disk|cmdline (-append)
VECTORS='ovmf-vtpm|built:firmware/ovmf-vtpm/OVMF.fd|built:kernel/bzImage|initrd.cpio|512||console=ttyS0 panic=-1 quiet
ovmf-vtpm-cmdline-verity|built:firmware/ovmf-vtpm/OVMF.fd|built:kernel/bzImage|initrd.cpio|512||console=ttyS0 root=/dev/dm-0 ro rootwait dm-mod.create="vroot,,,ro,0 76712 verity 1 /dev/vda2 /dev/vda3 4096 4096 9589 1 sha256 ae9f050825ea57484f8e3a463bb36070bb6100140d6151ef7bd429246082f0d3 98aa97b11cd3487c856ec9baec6d6510c83790f585eff440afa38bcf664c11fa" panic=-1 quiet
ovmf-vtpm-2g|built:firmware/ovmf-vtpm/OVMF.fd|built:kernel/bzImage|initrd.cpio|2048||console=ttyS0 panic=-1 quiet
ovmf-vtpm-disk|built:firmware/ovmf-vtpm/OVMF.fd|built:kernel/bzImage|initrd.cpio|512|built:disk/disk.raw|console=ttyS0 panic=-1 quiet
debian-ovmf|fixture:O1|built:kernel/bzImage|initrd.cpio|512||console=ttyS0 panic=-1 quiet
debian-ovmf-debian-kernel|fixture:O1|fixture:K1|initrd.cpio|512||console=ttyS0 panic=-1 quiet
debian-sid-ovmf-2026.08|deb:ovmf-generic_2026.08+ds-2_all.deb:usr/share/ovmf/OVMF.fd|built:kernel/bzImage|initrd.cpio|512||console=ttyS0 panic=-1 quiet
ovmf-vtpm-no-initrd|built:firmware/ovmf-vtpm/OVMF.fd|built:kernel/bzImage|-|512|rootdisk:|console=ttyS0 panic=-1 quiet root=/dev/vda ro rootfstype=erofs init=/init'

resolve() {
    case $1 in
    built:*) echo "$built/${1#built:}" ;;
    fixture:*) echo "$fixtures/${1#fixture:}" ;;
    initrd.cpio) echo "$here/initrd.cpio" ;;
    rootdisk:) echo "$work/rootdisk.erofs" ;;
    deb:*) # deb:FILE.deb:PATH: PATH inside a .deb placed in $work/debs (e.g. `apt-get download`
        # from Debian sid, which this machine's sources do not carry by default)
        spec=${1#deb:} deb=${spec%%:*} path=${spec#*:}
        x=$work/debs/x-${deb%.deb}
        [ -e "$x/$path" ] || { mkdir -p "$x" && dpkg-deb -x "$work/debs/$deb" "$x"; }
        echo "$x/$path" ;;
    *) echo "unknown source $1" >&2; exit 2 ;;
    esac
}
sha() { sha256sum "$1" | cut -d' ' -f1; }

if [ "${1:-}" = --rebuild-initrd ]; then
    shift
    mkdir -p "$work"
    gcc -Os -static -nostdlib -fno-asynchronous-unwind-tables -fno-ident -s \
        -include nolibc.h -I "$nolibc" -o "$work/init" "$here/init.c" -lgcc
    python3 "$here/dump.py" cpio "$work/init" "$here/initrd.cpio"
    echo "initrd.cpio: $(sha "$here/initrd.cpio")"
fi

capture() { # name firmware kernel initrd mem disk cmdline
    name=$1 fw_src=$2 kernel_src=$3 initrd_src=$4 mem=$5 disk_src=$6 cmdline=$7
    fw=$(resolve "$fw_src") kernel=$(resolve "$kernel_src") initrd= disk=
    [ "$initrd_src" != - ] && initrd=$(resolve "$initrd_src")
    [ -n "$disk_src" ] && disk=$(resolve "$disk_src")
    d=$work/$name
    rm -rf "$d"
    mkdir -p "$d/tpm"
    printf '%s' "$cmdline" >"$d/cmdline.txt"
    swtpm_setup --tpm2 --pcr-banks sha256,sha384 --tpmstate "$d/tpm" --createek --overwrite \
        >"$d/swtpm_setup.log" 2>&1
    swtpm socket --tpm2 --tpmstate dir="$d/tpm" --ctrl type=unixio,path="$d/tpm/sock" \
        --terminate --log file="$d/swtpm.log" &
    spid=$!
    i=0
    while [ ! -S "$d/tpm/sock" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    set -- -machine q35,accel=tcg -cpu max -smp 1 -m "$mem" -nodefaults -display none \
        -no-reboot -bios "$fw" -kernel "$kernel" -append "$cmdline" \
        -serial file:"$d/serial.log" -serial file:"$d/dump.txt" \
        -chardev socket,id=chrtpm,path="$d/tpm/sock" -tpmdev emulator,id=tpm0,chardev=chrtpm \
        -device tpm-crb,tpmdev=tpm0
    [ -n "$initrd" ] && set -- "$@" -initrd "$initrd"
    [ -n "$disk" ] && set -- "$@" -drive file="$disk",if=virtio,format=raw,snapshot=on
    echo "==> $name: qemu-system-x86_64 $*"
    timeout 600 qemu-system-x86_64 "$@"
    wait $spid || true
    mkdir -p "$here/$name"
    python3 "$here/dump.py" parse "$d/dump.txt" "$here/$name"
    # What went in, by sha256 (paths are symbolic: built:/fixture: as in VECTORS).
    python3 - "$here/$name/capture.json" <<EOF
import json, sys
json.dump({
    "firmware": {"source": "$fw_src", "sha256": "$(sha "$fw")"},
    "kernel": {"source": "$kernel_src", "sha256": "$(sha "$kernel")"},
    "initrd": {"source": "$initrd_src", "sha256": "$([ -n "$initrd" ] && sha "$initrd")"} if "$initrd" else None,
    "disk": {"source": "$disk_src", "sha256": "$([ -n "$disk" ] && sha "$disk")"} if "$disk_src" else None,
    "memory_mib": $mem,
    "cmdline": open("$d/cmdline.txt").read(),
    "qemu": "$(qemu-system-x86_64 --version | head -1)",
    "swtpm": "$(swtpm --version | head -1)",
}, open(sys.argv[1], "w"), indent=1, sort_keys=True)
open(sys.argv[1], "a").write("\n")
EOF
}

# The root file system of the no-initrd boot: the same /init on erofs (not measured: with
# direct boot the disk is not part of any PCR, see README.md).
rootdisk() {
    r=$work/rootdisk
    rm -rf "$r" "$work/rootdisk.erofs"
    mkdir -p "$r/dev" "$r/proc" "$r/sys"
    python3 "$here/dump.py" extract-init "$here/initrd.cpio" "$r/init"
    mkfs.erofs -T0 --all-root -U 00000000-0000-0000-0000-000000000001 "$work/rootdisk.erofs" "$r" >/dev/null
}

mkdir -p "$work"
echo "$VECTORS" | while IFS='|' read -r name fw kernel initrd mem disk cmdline; do
    if [ $# -gt 0 ]; then
        case " $* " in *" $name "*) ;; *) continue ;; esac
    fi
    [ "$disk" = rootdisk: ] && rootdisk
    capture "$name" "$fw" "$kernel" "$initrd" "$mem" "$disk" "$cmdline"
done

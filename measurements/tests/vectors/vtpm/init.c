/* /init of the vTPM capture initramfs (measurements/tests/vectors/vtpm/).
 *
 * Built against the kernel's nolibc (tools/include/nolibc), static, no libc:
 *   gcc -Os -static -nostdlib -fno-asynchronous-unwind-tables -fno-ident -s \
 *       -include nolibc.h -I tools/include/nolibc -o init init.c -lgcc
 *
 * Mounts proc, sysfs and securityfs, then writes to /dev/ttyS1 (QEMU's second serial port,
 * a file on the host) in hex: /proc/cmdline, the TCG2 event log
 * /sys/kernel/security/tpm0/binary_bios_measurements and every PCR of the sha256 and sha384
 * banks from /sys/class/tpm/tpm0/pcr-<bank>/<n>; then powers off.
 */

static int out = -1;

/* write() to a tty may return early or fail with EAGAIN while the UART drains: retry. */
static void put_n(const char *s, long n)
{
	int tries = 0;
	while (n > 0 && tries < 1000000) {
		long r = write(out, s, n);
		if (r > 0) {
			s += r;
			n -= r;
			tries = 0;
		} else {
			tries++;
		}
	}
}

static void put(const char *s) { put_n(s, strlen(s)); }

static void put_hex(const unsigned char *b, long n)
{
	static const char d[] = "0123456789abcdef";
	char buf[2 * 64];
	long i = 0;
	while (i < n) {
		long k = 0;
		for (; k < 64 && i < n; k++, i++) {
			buf[2 * k] = d[b[i] >> 4];
			buf[2 * k + 1] = d[b[i] & 15];
		}
		put_n(buf, 2 * k);
	}
}

static void put_num(long v)
{
	char buf[24];
	int i = sizeof(buf);
	buf[--i] = 0;
	do {
		buf[--i] = '0' + v % 10;
		v /= 10;
	} while (v);
	put(buf + i);
}

static unsigned char data[1 << 20];

/* Read a whole file into data[]; returns its length or -1. */
static long slurp(const char *path)
{
	int fd = open(path, O_RDONLY, 0);
	long n = 0, r;
	if (fd < 0)
		return -1;
	while (n < (long)sizeof(data) && (r = read(fd, data + n, sizeof(data) - n)) > 0)
		n += r;
	close(fd);
	return n;
}

/* "L <offset> <hex>" lines of 64 bytes each, so a reader can check nothing is missing. */
static void dump(const char *tag, const char *path)
{
	long n = slurp(path), off;
	put(tag);
	put(" ");
	put_num(n);
	put("\n");
	for (off = 0; off < n; off += 64) {
		put("L ");
		put_num(off);
		put(" ");
		put_hex(data + off, n - off < 64 ? n - off : 64);
		put("\n");
	}
}

static void pcrs(const char *bank)
{
	char path[64];
	int i;
	for (i = 0; i < 24; i++) {
		long n;
		char *p = path;
		const char *a = "/sys/class/tpm/tpm0/pcr-";
		while (*a)
			*p++ = *a++;
		for (a = bank; *a;)
			*p++ = *a++;
		*p++ = '/';
		if (i >= 10)
			*p++ = '0' + i / 10;
		*p++ = '0' + i % 10;
		*p = 0;
		n = slurp(path);
		put("PCR ");
		put(bank);
		put(" ");
		put_num(i);
		put(" ");
		/* sysfs prints the value as uppercase hex and a newline; pass it through. */
		if (n > 0)
			put_n((const char *)data, n);
		else
			put("missing\n");
	}
}

int main(void)
{
	mount("proc", "/proc", "proc", 0, 0);
	mount("sysfs", "/sys", "sysfs", 0, 0);
	mount("securityfs", "/sys/kernel/security", "securityfs", 0, 0);
	out = open("/dev/ttyS1", O_WRONLY | O_NOCTTY, 0);
	if (out < 0)
		out = 1;
	put("VTPM-DUMP-BEGIN\n");
	dump("CMDLINE", "/proc/cmdline");
	dump("LOG", "/sys/kernel/security/tpm0/binary_bios_measurements");
	pcrs("sha256");
	pcrs("sha384");
	put("VTPM-DUMP-END\n");
	fsync(out);
	write(1, "VTPM-CAPTURE-DONE\n", 18);
	reboot(LINUX_REBOOT_CMD_POWER_OFF);
	return 0;
}

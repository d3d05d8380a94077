// SPDX-License-Identifier: GPL-2.0
/*
 * Security hooks on every KCM socket: a socket made by SIOCKCMCLONE must
 * pass the same LSM hooks as one made by socket() (creation, which a
 * policy may refuse, and post-creation, where it is labelled).  A BPF LSM
 * program (Debian's kernels have CONFIG_BPF_LSM, "bpf" in CONFIG_LSM) on
 * socket_create and socket_post_create counts the AF_KCM sockets they see
 * and, when told to, refuses socket_create with EPERM.  The programs are
 * raw instructions attached by the BTF id of the hook, read from
 * /sys/kernel/btf/vmlinux: no libbpf, no compiler.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/bpf.h>
#include <linux/btf.h>
#include <linux/sockios.h>

#include "kcm_test.h"

/* The map's slots: what the programs count, and the policy. */
enum { SLOT_CREATE, SLOT_POST_CREATE, SLOT_DENY, SLOTS };

static long bpf_call(int cmd, union bpf_attr *attr)
{
	return syscall(__NR_bpf, cmd, attr, sizeof(*attr));
}

/* The BTF id of the function @name in the kernel's BTF, or -1. */
static int vmlinux_func_id(const char *name)
{
	char *btf = NULL;
	size_t len = 0, cap = 0;
	const struct btf_header *h;
	const char *types, *strs;
	uint32_t off = 0;
	int fd, id = 1, found = -1;
	ssize_t n;

	fd = open("/sys/kernel/btf/vmlinux", O_RDONLY);
	if (fd < 0)
		return -1;
	for (;;) {
		if (len == cap) {
			cap = cap ? cap * 2 : 1 << 22;
			btf = realloc(btf, cap);
			if (!btf)
				KCM_FAIL("no memory for the kernel's BTF");
		}
		n = read(fd, btf + len, cap - len);
		if (n <= 0)
			break;
		len += n;
	}
	close(fd);
	h = (const struct btf_header *)btf;
	if (len < sizeof(*h) || h->magic != BTF_MAGIC) {
		free(btf);
		return -1;
	}
	types = btf + h->hdr_len + h->type_off;
	strs = btf + h->hdr_len + h->str_off;
	while (off < h->type_len) {
		const struct btf_type *t = (const void *)(types + off);
		uint32_t kind = BTF_INFO_KIND(t->info);
		uint32_t vlen = BTF_INFO_VLEN(t->info);

		if (kind == BTF_KIND_FUNC && !strcmp(strs + t->name_off, name)) {
			found = id;
			break;
		}
		off += sizeof(*t);
		switch (kind) {
		case BTF_KIND_INT:
		case BTF_KIND_VAR:
		case BTF_KIND_DECL_TAG:
			off += 4;
			break;
		case BTF_KIND_ARRAY:
			off += sizeof(struct btf_array);
			break;
		case BTF_KIND_STRUCT:
		case BTF_KIND_UNION:
			off += vlen * sizeof(struct btf_member);
			break;
		case BTF_KIND_ENUM:
			off += vlen * sizeof(struct btf_enum);
			break;
		case BTF_KIND_FUNC_PROTO:
			off += vlen * sizeof(struct btf_param);
			break;
		case BTF_KIND_DATASEC:
			off += vlen * sizeof(struct btf_var_secinfo);
			break;
		case 19:	/* BTF_KIND_ENUM64: value low, high, name */
			off += vlen * 12;
			break;
		default:	/* no data after the type */
			break;
		}
		id++;
	}
	free(btf);
	return found;
}

#define INSN(c, d, s, o, i) \
	((struct bpf_insn){ .code = (c), .dst_reg = (d), .src_reg = (s), \
			    .off = (o), .imm = (i) })

/*
 * The program of one hook: if argument @family_arg (the hook's arguments
 * are u64s at the context) is AF_KCM, add 1 to the map's slot @slot and,
 * if @deny, return -EPERM when the map's SLOT_DENY is not 0.  Else 0.
 */
static int lsm_prog_load(const char *hook, int map, int family_arg, int slot,
			 int deny)
{
	struct bpf_insn p[40];
	union bpf_attr attr;
	char fn[64];
	int n = 0, jout, fd, btf_id;

	snprintf(fn, sizeof(fn), "bpf_lsm_%s", hook);
	btf_id = vmlinux_func_id(fn);
	if (btf_id < 0)
		KCM_FAIL("no %s in /sys/kernel/btf/vmlinux", fn);

	p[n++] = INSN(BPF_LDX | BPF_MEM | BPF_DW, BPF_REG_6, BPF_REG_1,
		      family_arg * 8, 0);
	jout = n;
	p[n++] = INSN(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_6, 0, 0, AF_KCM);
	/* slot += 1 */
	p[n++] = INSN(BPF_ST | BPF_MEM | BPF_W, BPF_REG_10, 0, -4, slot);
	p[n++] = INSN(BPF_LD | BPF_IMM | BPF_DW, BPF_REG_1, BPF_PSEUDO_MAP_FD,
		      0, map);
	p[n++] = INSN(0, 0, 0, 0, 0);
	p[n++] = INSN(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_2, BPF_REG_10, 0, 0);
	p[n++] = INSN(BPF_ALU64 | BPF_ADD | BPF_K, BPF_REG_2, 0, 0, -4);
	p[n++] = INSN(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_map_lookup_elem);
	p[n++] = INSN(BPF_JMP | BPF_JEQ | BPF_K, BPF_REG_0, 0, 2, 0);
	p[n++] = INSN(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_1, 0, 0, 1);
	p[n++] = INSN(BPF_STX | BPF_ATOMIC | BPF_DW, BPF_REG_0, BPF_REG_1, 0,
		      BPF_ADD);
	if (deny) {
		/* if (map[SLOT_DENY]) return -EPERM */
		p[n++] = INSN(BPF_ST | BPF_MEM | BPF_W, BPF_REG_10, 0, -4,
			      SLOT_DENY);
		p[n++] = INSN(BPF_LD | BPF_IMM | BPF_DW, BPF_REG_1,
			      BPF_PSEUDO_MAP_FD, 0, map);
		p[n++] = INSN(0, 0, 0, 0, 0);
		p[n++] = INSN(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_2,
			      BPF_REG_10, 0, 0);
		p[n++] = INSN(BPF_ALU64 | BPF_ADD | BPF_K, BPF_REG_2, 0, 0, -4);
		p[n++] = INSN(BPF_JMP | BPF_CALL, 0, 0, 0,
			      BPF_FUNC_map_lookup_elem);
		p[n++] = INSN(BPF_JMP | BPF_JEQ | BPF_K, BPF_REG_0, 0, 4, 0);
		p[n++] = INSN(BPF_LDX | BPF_MEM | BPF_DW, BPF_REG_1, BPF_REG_0,
			      0, 0);
		p[n++] = INSN(BPF_JMP | BPF_JEQ | BPF_K, BPF_REG_1, 0, 2, 0);
		p[n++] = INSN(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0,
			      -EPERM);
		p[n++] = INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
	}
	p[jout].off = n - jout - 1;
	p[n++] = INSN(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0);
	p[n++] = INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);

	memset(&attr, 0, sizeof(attr));
	attr.prog_type = BPF_PROG_TYPE_LSM;
	attr.expected_attach_type = BPF_LSM_MAC;
	attr.attach_btf_id = btf_id;
	attr.insns = (uint64_t)(uintptr_t)p;
	attr.insn_cnt = n;
	attr.license = (uint64_t)(uintptr_t)"GPL";
	fd = bpf_call(BPF_PROG_LOAD, &attr);
	if (fd < 0) {
		static char log[65536];
		int err = errno;

		attr.log_buf = (uint64_t)(uintptr_t)log;
		attr.log_size = sizeof(log);
		attr.log_level = 1;
		bpf_call(BPF_PROG_LOAD, &attr);
		kcm_diag("verifier: %s", log);
		KCM_FAIL("BPF_PROG_LOAD(lsm/%s): %s", hook, strerror(err));
	}
	return fd;
}

struct lsm_policy {
	int map;
	int prog[2];
	int link[2];
};

/* Both programs loaded and attached; every slot 0. */
static void lsm_attach(struct lsm_policy *pol)
{
	static const char *const hooks[] = { "socket_create",
					     "socket_post_create" };
	/* socket_create(family, ...), socket_post_create(sock, family, ...) */
	static const int family_arg[] = { 0, 1 };
	union bpf_attr attr;
	int i;

	memset(&attr, 0, sizeof(attr));
	attr.map_type = BPF_MAP_TYPE_ARRAY;
	attr.key_size = 4;
	attr.value_size = 8;
	attr.max_entries = SLOTS;
	pol->map = bpf_call(BPF_MAP_CREATE, &attr);
	if (pol->map < 0)
		KCM_FAIL("BPF_MAP_CREATE: %s", strerror(errno));
	for (i = 0; i < 2; i++) {
		pol->prog[i] = lsm_prog_load(hooks[i], pol->map, family_arg[i],
					     i == 0 ? SLOT_CREATE :
					     SLOT_POST_CREATE, i == 0);
		memset(&attr, 0, sizeof(attr));
		attr.raw_tracepoint.prog_fd = pol->prog[i];
		pol->link[i] = bpf_call(BPF_RAW_TRACEPOINT_OPEN, &attr);
		if (pol->link[i] < 0)
			KCM_FAIL("attach lsm/%s: %s", hooks[i],
				 strerror(errno));
	}
}

static void lsm_detach(struct lsm_policy *pol)
{
	int i;

	for (i = 0; i < 2; i++) {
		close(pol->link[i]);
		close(pol->prog[i]);
	}
	close(pol->map);
}

static uint64_t slot_get(struct lsm_policy *pol, uint32_t slot)
{
	union bpf_attr attr;
	uint64_t v = 0;

	memset(&attr, 0, sizeof(attr));
	attr.map_fd = pol->map;
	attr.key = (uint64_t)(uintptr_t)&slot;
	attr.value = (uint64_t)(uintptr_t)&v;
	ASSERT_OK(bpf_call(BPF_MAP_LOOKUP_ELEM, &attr));
	return v;
}

static void slot_set(struct lsm_policy *pol, uint32_t slot, uint64_t v)
{
	union bpf_attr attr;

	memset(&attr, 0, sizeof(attr));
	attr.map_fd = pol->map;
	attr.key = (uint64_t)(uintptr_t)&slot;
	attr.value = (uint64_t)(uintptr_t)&v;
	ASSERT_OK(bpf_call(BPF_MAP_UPDATE_ELEM, &attr));
}

static int open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		KCM_FAIL("opendir /proc/self/fd: %s", strerror(errno));
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static int clone_of(int fd)
{
	struct kcm_clone info = { .fd = -1 };

	if (ioctl(fd, SIOCKCMCLONE, &info) < 0)
		return -1;
	return info.fd;
}

/*
 * socket() and SIOCKCMCLONE each pass socket_create and
 * socket_post_create once for AF_KCM, for both socket types; the clone is
 * a working socket of the same mux.
 */
KCM_TEST(lsm_clone_passes_create_hooks,
	 KCM_LINUX_BUG("SIOCKCMCLONE makes its socket without the LSM hooks"))
{
	static const int types[] = { SOCK_DGRAM, SOCK_SEQPACKET };
	struct lsm_policy pol;
	int i;

	lsm_attach(&pol);
	for (i = 0; i < 2; i++) {
		uint64_t c0 = slot_get(&pol, SLOT_CREATE);
		uint64_t p0 = slot_get(&pol, SLOT_POST_CREATE);
		int fd = socket(AF_KCM, types[i], KCMPROTO_CONNECTED);
		int cl, tcp, peer;
		char b[64];

		ASSERT_OK(fd);
		ASSERT_EQ(slot_get(&pol, SLOT_CREATE), c0 + 1);
		ASSERT_EQ(slot_get(&pol, SLOT_POST_CREATE), p0 + 1);
		cl = clone_of(fd);
		ASSERT_OK(cl);
		if (slot_get(&pol, SLOT_CREATE) != c0 + 2 ||
		    slot_get(&pol, SLOT_POST_CREATE) != p0 + 2)
			KCM_FAIL("type %d: the clone passed socket_create %llu and socket_post_create %llu times, socket() 1 and 1",
				 types[i],
				 (unsigned long long)(slot_get(&pol, SLOT_CREATE) - c0 - 1),
				 (unsigned long long)(slot_get(&pol, SLOT_POST_CREATE) - p0 - 1));
		/* The clone is of the same mux: a message attached through
		 * the first socket reaches a reader of the clone.
		 */
		kcm_set_int_opt(fd, SOL_KCM, KCM_RECV_DISABLE, 1);
		kcm_tcp_pair(AF_INET, &peer, &tcp);
		ASSERT_OK(kcm_attach(fd, tcp, kcm_prog_len32()));
		kcm_send_framed(peer, "hello", 5);
		ASSERT_EQ(kcm_recv_timeout(cl, b, sizeof(b), 0, 5000), 9);
		ASSERT_EQ(memcmp(b + 4, "hello", 5), 0);
		close(cl);
		close(fd);
		close(tcp);
		close(peer);
	}
	lsm_detach(&pol);
}

/*
 * A policy that refuses AF_KCM sockets refuses clones too, with its errno,
 * and leaves nothing behind: no descriptor, no socket on the mux (whose
 * /proc/net/kcm rows stay as they were), and the mux works as before.
 */
KCM_TEST(lsm_clone_refused_by_policy,
	 KCM_LINUX_BUG("SIOCKCMCLONE makes its socket without the LSM hooks"))
{
	struct lsm_policy pol;
	int fd, fds, tcp, peer;
	char *before, *after, b[64];

	fd = ASSERT_OK(socket(AF_KCM, SOCK_DGRAM, KCMPROTO_CONNECTED));
	kcm_tcp_pair(AF_INET, &peer, &tcp);
	ASSERT_OK(kcm_attach(fd, tcp, kcm_prog_len32()));
	lsm_attach(&pol);
	slot_set(&pol, SLOT_DENY, 1);

	ASSERT_ERRNO(socket(AF_KCM, SOCK_DGRAM, KCMPROTO_CONNECTED), EPERM);
	before = kcm_read_file("/proc/net/kcm");
	fds = open_fds();
	if (clone_of(fd) >= 0)
		KCM_FAIL("a clone was made while the policy refuses AF_KCM sockets");
	ASSERT_EQ(errno, EPERM);
	ASSERT_EQ(open_fds(), fds);
	after = kcm_read_file("/proc/net/kcm");
	ASSERT_EQ(!before || !after, 0);
	ASSERT_STREQ(after, before);
	free(before);
	free(after);

	slot_set(&pol, SLOT_DENY, 0);
	lsm_detach(&pol);
	kcm_send_framed(peer, "still", 5);
	ASSERT_EQ(kcm_recv_timeout(fd, b, sizeof(b), 0, 5000), 9);
	ASSERT_EQ(memcmp(b + 4, "still", 5), 0);
}

/* What a VM and cellvm's switch say over the switch's socket (a Unix
 * SOCK_SEQPACKET connection per VM, so each message is one whole frame).
 *
 * First the VM sends a hello: "CVSW", version, its NIC's MAC (11 bytes);
 * the switch answers "CVSW" and a status byte. After an OK, every message
 * either way is one Ethernet frame, without virtio-net header. */
#ifndef CELLVM_NET_SWITCH_PROTO_H
#define CELLVM_NET_SWITCH_PROTO_H

#define SWITCH_MAGIC "CVSW"
#define SWITCH_VERSION 1
#define SWITCH_HELLO_LEN 11
#define SWITCH_REPLY_LEN 5
/* Frames from a NIC without offloads: 1514 bytes, VLAN tags, jumbo MTUs. */
#define SWITCH_FRAME_MAX 16384
#define SWITCH_SOCKBUF (1 << 20)

enum switch_status {
	SWITCH_OK = 0,
	SWITCH_DUP_MAC = 1, /* another port registered this MAC */
	SWITCH_BAD_HELLO = 2,
	SWITCH_FULL = 3,
};

#endif

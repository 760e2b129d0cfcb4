//! TCP checksums done by the NIC driver, as a NIC with checksum offload does them: the driver
//! fills the checksum of each TCP segment it sends and checks it on each one it receives, and
//! smoltcp, told the device does so (`ChecksumCapabilities`), skips both.
//!
//! Why: smoltcp's checksum adds 16-bit words one at a time; a 64-byte keep-alive echo (one
//! segment in, one out) spent ~860 guest instructions there, 8% of the request. Here eight
//! bytes are added per step (RFC 1071: the ones'-complement sum may be taken over any word
//! size and folded), about a fifth of the work.
//!
//! Only TCP over IPv4 is handled; everything else (IPv4 headers, ICMP, UDP) keeps smoltcp's
//! checksums. A fragment cannot be checked alone: it is passed on, and smoltcp (built without
//! reassembly) drops it.

/// Ethernet header length (no VLAN tag: smoltcp neither sends nor accepts one).
const ETHERNET: usize = 14;
const ETHERTYPE_IPV4: [u8; 2] = [0x08, 0x00];
const PROTOCOL_TCP: u8 = 6;
/// Where a TCP header keeps its checksum.
const TCP_CHECKSUM_AT: usize = 16;

/// The ones'-complement sum of `data` as big-endian 16-bit words (an odd last byte padded with
/// zero), folded to 16 bits, not complemented.
pub fn sum(data: &[u8]) -> u16 {
    fold(accumulate(0, data))
}

/// Adds `data` to a 64-bit ones'-complement accumulator, eight bytes at a time.
fn accumulate(mut acc: u64, data: &[u8]) -> u64 {
    let (words, tail) = data.as_chunks::<8>();
    for word in words {
        let (s, carry) = acc.overflowing_add(u64::from_be_bytes(*word));
        acc = s + u64::from(carry);
    }
    // The last 0..=7 bytes, zero-padded on the right (as big-endian words are).
    let mut last = [0u8; 8];
    last[..tail.len()].copy_from_slice(tail);
    let (s, carry) = acc.overflowing_add(u64::from_be_bytes(last));
    s + u64::from(carry)
}

/// A 64-bit ones'-complement sum folded to 16 bits.
fn fold(acc: u64) -> u16 {
    let acc = (acc & 0xffff_ffff) + (acc >> 32);
    let acc = (acc & 0xffff_ffff) + (acc >> 32);
    let acc = (acc & 0xffff) + (acc >> 16);
    let acc = (acc & 0xffff) + (acc >> 16);
    let acc = (acc & 0xffff) + (acc >> 16);
    acc as u16
}

/// The TCP segment of an Ethernet frame, if it holds one whole, unfragmented TCP/IPv4 segment:
/// (where the segment starts, its length, the pseudo-header's sum).
fn tcp_segment(frame: &[u8]) -> Option<(usize, usize, u64)> {
    if frame.get(12..14)? != ETHERTYPE_IPV4 {
        return None;
    }
    let ip = frame.get(ETHERNET..)?;
    let version_ihl = *ip.first()?;
    let header = usize::from(version_ihl & 0x0f) * 4;
    if version_ihl >> 4 != 4 || header < 20 || ip.len() < header || ip[9] != PROTOCOL_TCP {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    // More fragments, or an offset: not a whole segment.
    if u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0 || total < header + 20 || total > ip.len() {
        return None;
    }
    let length = total - header;
    // Source and destination addresses, protocol, TCP length.
    let pseudo = accumulate(u64::from(PROTOCOL_TCP) + length as u64, &ip[12..20]);
    Some((ETHERNET + header, length, pseudo))
}

/// Fills the TCP checksum of a frame about to be sent (smoltcp left it zero); other frames are
/// left as they are.
pub fn fill_tcp(frame: &mut [u8]) {
    let Some((start, length, pseudo)) = tcp_segment(frame) else { return };
    let segment = &mut frame[start..start + length];
    segment[TCP_CHECKSUM_AT..TCP_CHECKSUM_AT + 2].copy_from_slice(&[0, 0]);
    let checksum = !fold(accumulate(pseudo, segment));
    segment[TCP_CHECKSUM_AT..TCP_CHECKSUM_AT + 2].copy_from_slice(&checksum.to_be_bytes());
}

/// Whether a received frame may go to smoltcp: false only for a whole TCP/IPv4 segment whose
/// checksum is wrong.
pub fn tcp_ok(frame: &[u8]) -> bool {
    match tcp_segment(frame) {
        Some((start, length, pseudo)) => fold(accumulate(pseudo, &frame[start..start + length])) == 0xffff,
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// RFC 1071 as written: 16-bit words, end-around carry.
    fn naive(data: &[u8]) -> u16 {
        let mut acc: u32 = 0;
        for pair in data.chunks(2) {
            acc += u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    /// A frame with an IPv4 TCP segment of `payload`, checksums as smoltcp writes them.
    fn frame(payload: &[u8], flags: u16) -> Vec<u8> {
        let total = 20 + 20 + payload.len();
        let mut f = Vec::new();
        f.extend_from_slice(&[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00]);
        let mut ip = [0u8; 20];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        ip[6..8].copy_from_slice(&flags.to_be_bytes());
        ip[8] = 64;
        ip[9] = PROTOCOL_TCP;
        ip[12..16].copy_from_slice(&[10, 0, 2, 15]);
        ip[16..20].copy_from_slice(&[10, 0, 2, 2]);
        f.extend_from_slice(&ip);
        let mut tcp = [0u8; 20];
        tcp[0..2].copy_from_slice(&8080u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&40000u16.to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = 0x18;
        f.extend_from_slice(&tcp);
        f.extend_from_slice(payload);
        f
    }

    /// The TCP checksum as smoltcp computes it: pseudo-header and segment, 16 bits at a time.
    fn reference(f: &[u8]) -> u16 {
        let segment = &f[34..];
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&f[26..34]);
        pseudo.extend_from_slice(&[0, PROTOCOL_TCP]);
        pseudo.extend_from_slice(&(segment.len() as u16).to_be_bytes());
        let mut zeroed = segment.to_vec();
        zeroed[16..18].copy_from_slice(&[0, 0]);
        pseudo.extend_from_slice(&zeroed);
        !naive(&pseudo)
    }

    proptest::proptest! {
        #[test]
        fn sum_is_rfc_1071(data in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            proptest::prop_assert_eq!(sum(&data), naive(&data));
        }

        /// Filled checksums are the reference's, and verify; any one flipped bit in the
        /// segment or the addresses is caught.
        #[test]
        fn fill_then_check_catches_every_flipped_bit(payload in proptest::collection::vec(proptest::num::u8::ANY, 0..200), bit in 0usize..10_000) {
            let mut f = frame(&payload, 0x4000);
            fill_tcp(&mut f);
            proptest::prop_assert_eq!(u16::from_be_bytes([f[50], f[51]]), reference(&f));
            proptest::prop_assert!(tcp_ok(&f));
            // Flip a bit among the addresses (26..34) and the segment (34..).
            let span = f.len() - 26;
            let at = 26 + (bit / 8) % span;
            f[at] ^= 1 << (bit % 8);
            proptest::prop_assert!(!tcp_ok(&f), "flipped bit {} of byte {at} went unnoticed", bit % 8);
        }
    }

    #[test]
    fn other_frames_pass_untouched() {
        let mut arp = frame(b"x", 0);
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        let before = arp.clone();
        fill_tcp(&mut arp);
        assert_eq!(arp, before);
        assert!(tcp_ok(&arp));
        let mut udp = frame(b"x", 0);
        udp[23] = 17;
        assert!(tcp_ok(&udp), "UDP is smoltcp's to check");
        let fragment = frame(b"abc", 0x2000);
        assert!(tcp_ok(&fragment), "a fragment is passed on (smoltcp drops it)");
        let mut short = frame(b"abc", 0);
        short.truncate(40);
        assert!(tcp_ok(&short), "a truncated packet is passed on (smoltcp drops it)");
        assert!(tcp_ok(&[]));
    }
}

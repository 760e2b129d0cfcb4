//! The matmul function's work compiled natively for the host: multiplies two N×N matrices
//! (N from the command line, default 64) of the same values `cargo xtask bench wasm` sends,
//! and prints a checksum. `valgrind --tool=callgrind` over it with N and with N = 0 gives the
//! native instruction count that the wasm engine's count is compared with.

fn matrix(n: u32, seed: usize) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&n.to_le_bytes());
    for i in 0..(n as usize * n as usize) {
        let v = ((i * 37 + seed) % 101) as f64 / 7.0 - 5.0;
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

fn main() {
    let n: u32 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(64);
    let c = matmul::multiply_encoded(&matrix(n, 1), &matrix(n, 2)).expect("square matrices multiply");
    let checksum: f64 = c[8..].chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap())).sum();
    println!("{n}x{n}: checksum {checksum}");
}

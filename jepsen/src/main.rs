fn main() {
    eprintln!("pgquorum-jepsen: being written");
}

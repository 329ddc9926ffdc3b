//! Shared test helpers: reading and damaging the files of a data folder.

use std::path::Path;

/// Every file under `dir`, as bytes.
pub fn files_under(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                folders.push(path);
            } else {
                let bytes = std::fs::read(&path).expect("read");
                files.push((path, bytes));
            }
        }
    }
    files
}

/// Flips a byte of the one stored record that holds `id` (in the id itself), so its checksum
/// fails.
pub fn corrupt_stored_record(data: &Path, id: &str) {
    let mut hits = Vec::new();
    for (path, bytes) in files_under(&data.join("store")) {
        let is_segment = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("seg-"));
        if let Some(at) = bytes
            .windows(id.len())
            .position(|w| w == id.as_bytes())
            .filter(|_| is_segment)
        {
            hits.push((path, bytes, at));
        }
    }
    assert_eq!(hits.len(), 1, "one segment holds {id}");
    let (path, mut bytes, at) = hits.remove(0);
    bytes[at] ^= 0x01;
    std::fs::write(path, bytes).expect("write");
}

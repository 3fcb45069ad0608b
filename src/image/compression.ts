/** Compression formats of transferred images: detected from content on import, chosen by suffix or --format on export. Pure. */
export const COMPRESSIONS = ["uncompressed", "xz", "gzip", "bzip2", "zstd"] as const;
export type Compression = (typeof COMPRESSIONS)[number];

/** The format of a stream from its first bytes (at least 6 are needed). */
export function detectCompression(head: Uint8Array): Compression {
  const b = (i: number) => head[i] ?? -1;
  if (b(0) === 0x1f && b(1) === 0x8b) return "gzip";
  if (b(0) === 0xfd && b(1) === 0x37 && b(2) === 0x7a && b(3) === 0x58 && b(4) === 0x5a && b(5) === 0x00) return "xz";
  if (b(0) === 0x28 && b(1) === 0xb5 && b(2) === 0x2f && b(3) === 0xfd) return "zstd";
  if (b(0) === 0x42 && b(1) === 0x5a && b(2) === 0x68 && b(3) >= 0x31 && b(3) <= 0x39) return "bzip2";
  return "uncompressed";
}

/** The format a file name asks for ("x.tar.xz" -> xz), undefined for no known suffix. */
export function compressionFromSuffix(file: string): Compression | undefined {
  if (/\.(xz|txz)$/.test(file)) return "xz";
  if (/\.(gz|tgz)$/.test(file)) return "gzip";
  if (/\.(bz2|tbz2?)$/.test(file)) return "bzip2";
  if (/\.(zst|zstd|tzst)$/.test(file)) return "zstd";
  return undefined;
}

/** The command that decompresses stdin to stdout (gzip is done in process with zlib). */
export function decompressCommand(c: Compression): string[] | undefined {
  switch (c) {
    case "xz":
      return ["xz", "-d", "-c", "-T0"];
    case "bzip2":
      return ["bzip2", "-d", "-c"];
    case "zstd":
      return ["zstd", "-d", "-c", "-q", "--no-progress"];
    case "gzip":
      return ["gzip", "-d", "-c"];
    case "uncompressed":
      return undefined;
  }
}

export function compressCommand(c: Compression): string[] | undefined {
  switch (c) {
    case "xz":
      return ["xz", "-c", "-T0", "-3"];
    case "bzip2":
      return ["bzip2", "-c"];
    case "zstd":
      return ["zstd", "-c", "-q", "--no-progress", "-T0"];
    case "gzip":
      return ["gzip", "-c", "-6"];
    case "uncompressed":
      return undefined;
  }
}

/** Suffixes stripped from a URL's or file's last component to name the image (importd's list). */
export function stripImageSuffixes(base: string, kind: "tar" | "raw"): string {
  let s = base;
  for (;;) {
    const next = s.replace(/\.(xz|gz|bz2|zst|zstd|tgz|txz|tbz2?|tzst)$/, "");
    if (next === s) break;
    s = next;
  }
  s = kind === "tar" ? s.replace(/\.tar$/, "") : s.replace(/\.(raw|img|qcow2|bin|sdcard|sav|image|efi)$/, "");
  return s;
}

/** mount(2) flag bits (linux/mount.h). */
export const MS = {
  RDONLY: 1,
  NOSUID: 2,
  NODEV: 4,
  NOEXEC: 8,
  REMOUNT: 32,
  NOSYMFOLLOW: 256,
  NOATIME: 1024,
  BIND: 4096,
  REC: 16384,
  PRIVATE: 1 << 18,
  SLAVE: 1 << 19,
  SHARED: 1 << 20,
  RELATIME: 1 << 21,
  STRICTATIME: 1 << 24,
} as const;

/** File type bits for mknod(2) modes. */
export const S_IF = { REG: 0o100000, CHR: 0o020000, BLK: 0o060000, FIFO: 0o010000, SOCK: 0o140000 } as const;

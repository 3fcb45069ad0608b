/** Whether `bytes` begin with the ELF magic (0x7f 'E' 'L' 'F'). Pure. */
export function isElf(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x7f && bytes[1] === 0x45 && bytes[2] === 0x4c && bytes[3] === 0x46;
}

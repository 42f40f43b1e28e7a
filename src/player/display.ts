/**
 * Whether a player window can open here. On Linux and the BSDs a window needs an X11 or Wayland
 * display named in the environment; without one ffplay either fails or, under some setups, opens
 * nothing anyone can see. Windows and macOS always have a desktop for a logged-in user.
 */

/** Why no window can open (one phrase), or undefined when one can. */
export function displayMissing(env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform): string | undefined {
  if (platform === 'win32' || platform === 'darwin') return undefined;
  if (env.DISPLAY || env.WAYLAND_DISPLAY) return undefined;
  return 'no display (neither DISPLAY nor WAYLAND_DISPLAY is set)';
}

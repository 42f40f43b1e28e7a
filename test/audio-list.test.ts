/**
 * `share --audio list` (issue 15): the parsers read each tool's listing as the tool prints it
 * (FFmpeg's `-sources`/`-sinks`, `arecord -l`, DirectShow's and AVFoundation's `-list_devices`),
 * the reports say which source is what this machine plays, and every name listed is one `--audio`
 * takes back to the same FFmpeg device. The samples follow the tools' print formats (fftools'
 * print_device_list, alsa-utils' aplay.c, libavdevice's dshow.c and avfoundation.m); the null sink
 * one is what this FFmpeg printed against the private server of pulse-audio.test.ts.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  audioFlag,
  linuxReport,
  listAudioSources,
  macReport,
  parseArecordList,
  parseAvfoundationAudio,
  parseDeviceListing,
  parseDshowAudio,
  windowsReport,
  type LinuxFindings,
  type RunTool,
} from '../src/capture/audio-list.ts';
import { audioInputArgs, parseAudio } from '../src/capture/audio.ts';

const PULSE_SOURCES = `Auto-detected sources for pulse:
  alsa_output.pci-0000_00_1f.3.analog-stereo.monitor [Monitor of Built-in Audio Analog Stereo] (none)
* alsa_input.pci-0000_00_1f.3.analog-stereo [Built-in Audio Analog Stereo] (none)
  bluez_output.AA_BB_CC_DD_EE_FF.1.monitor [Monitor of WH-1000XM4 [LDAC]] (none)
`;
const PULSE_SINKS = `Auto-detected sinks for pulse:
* alsa_output.pci-0000_00_1f.3.analog-stereo [Built-in Audio Analog Stereo] (none)
  bluez_output.AA_BB_CC_DD_EE_FF.1 [WH-1000XM4 [LDAC]] (none)
`;
/** FFmpeg 5.1 here, against a server with one null sink. */
const NULL_SINK_SOURCES = 'Auto-detected sources for pulse:\n* udpcast_test.monitor [Monitor of Null Output] (none)\n';
const NO_SERVER = 'Auto-detected sources for pulse:\nCannot list sources: Generic error in an external library\n';
const ARECORD = `**** List of CAPTURE Hardware Devices ****
card 0: PCH [HDA Intel PCH], device 0: ALC3246 Analog [ALC3246 Analog]
  Subdevices: 1/1
  Subdevice #0: subdevice #0
card 2: C920 [HD Pro Webcam C920], device 0: USB Audio [USB Audio]
  Subdevices: 1/1
  Subdevice #0: subdevice #0
`;
const ALSA_HINTS = `Auto-detected sources for alsa:
  null [Discard all samples (playback) or generate zero samples (capture)] (none)
  pulse [PulseAudio Sound Server] (none)
* default [Default ALSA Output (currently PulseAudio Sound Server)] (none)
  hw:CARD=PCH,DEV=0 [Direct hardware device without any conversions] (none)
  plughw:CARD=PCH,DEV=0 [Hardware device with all software conversions] (none)
  sysdefault:CARD=PCH [Default Audio Device] (none)
`;
/** FFmpeg 4.4 and later: the kinds after each name. */
const DSHOW = `[dshow @ 0000021a4f1e2c40] "Integrated Webcam" (video)
[dshow @ 0000021a4f1e2c40]   Alternative name "@device_pnp_\\\\?\\usb#vid_0c45&pid_6723&mi_00#6&2a1b3c4d&0&0000#{65e8773d-8f56-11d0-a3b9-00a0c9223196}\\global"
[dshow @ 0000021a4f1e2c40] "OBS Virtual Camera" (none)
[dshow @ 0000021a4f1e2c40]   Alternative name "@device_sw_{860BB310-5D01-11D0-BD3B-00A0C911CE86}\\{A3FCE0F5-3493-419F-958A-ABA1250EC20B}"
[dshow @ 0000021a4f1e2c40] "Microphone Array (Realtek(R) Audio)" (audio)
[dshow @ 0000021a4f1e2c40]   Alternative name "@device_cm_{33D9A762-90C8-11D0-BD43-00A0C911CE86}\\wave_{5C1E1B9A-0F1D-4D2E-9C8B-1A2B3C4D5E6F}"
[dshow @ 0000021a4f1e2c40] "Stereo Mix (Realtek(R) Audio)" (audio)
[dshow @ 0000021a4f1e2c40]   Alternative name "@device_cm_{33D9A762-90C8-11D0-BD43-00A0C911CE86}\\wave_{7D2F2CAB-1E2E-5E3F-AD9C-2B3C4D5E6F70}"
[dshow @ 0000021a4f1e2c40] "Capture Card" (audio, video)
[dshow @ 0000021a4f1e2c40]   Alternative name "@device_pnp_\\\\?\\usb#vid_0fd9&pid_0066"
dummy: Immediate exit requested
`;
/** Before FFmpeg 4.4: a header per kind. */
const DSHOW_OLD = `[dshow @ 00000000005f2a80] DirectShow video devices (some may be both video and audio devices)
[dshow @ 00000000005f2a80]  "Integrated Webcam"
[dshow @ 00000000005f2a80]     Alternative name "@device_pnp_\\\\?\\usb#vid_0c45&pid_6723"
[dshow @ 00000000005f2a80] DirectShow audio devices
[dshow @ 00000000005f2a80]  "Microphone (USB Audio Device)"
[dshow @ 00000000005f2a80]     Alternative name "@device_cm_{33D9A762-90C8-11D0-BD43-00A0C911CE86}\\wave_{0A1B2C3D}"
dummy: Immediate exit requested
`;
const AVFOUNDATION = `[AVFoundation indev @ 0x7fb1c8e04a80] AVFoundation video devices:
[AVFoundation indev @ 0x7fb1c8e04a80] [0] FaceTime HD Camera
[AVFoundation indev @ 0x7fb1c8e04a80] [1] Capture screen 0
[AVFoundation indev @ 0x7fb1c8e04a80] AVFoundation audio devices:
[AVFoundation indev @ 0x7fb1c8e04a80] [0] MacBook Pro Microphone
[AVFoundation indev @ 0x7fb1c8e04a80] [1] BlackHole 2ch
[in#0 @ 0x7fb1c8e04600] Error opening input: Input/output error
`;
/** FFmpeg 4 called the device "AVFoundation input device". */
const AVFOUNDATION_OLD = `[AVFoundation input device @ 0x7ffac1e17880] AVFoundation video devices:
[AVFoundation input device @ 0x7ffac1e17880] [0] FaceTime HD Camera (Built-in)
[AVFoundation input device @ 0x7ffac1e17880] AVFoundation audio devices:
[AVFoundation input device @ 0x7ffac1e17880] [0] Built-in Microphone
: Input/output error
`;

describe('parsing each listing', () => {
  test("FFmpeg's -sources/-sinks: names, descriptions (brackets and all), the default; the failure's reason", () => {
    const cases: Array<[string, ReturnType<typeof parseDeviceListing>]> = [
      [
        PULSE_SOURCES,
        {
          supported: true,
          devices: [
            { name: 'alsa_output.pci-0000_00_1f.3.analog-stereo.monitor', description: 'Monitor of Built-in Audio Analog Stereo', isDefault: false },
            { name: 'alsa_input.pci-0000_00_1f.3.analog-stereo', description: 'Built-in Audio Analog Stereo', isDefault: true },
            { name: 'bluez_output.AA_BB_CC_DD_EE_FF.1.monitor', description: 'Monitor of WH-1000XM4 [LDAC]', isDefault: false },
          ],
        },
      ],
      [NULL_SINK_SOURCES, { supported: true, devices: [{ name: 'udpcast_test.monitor', description: 'Monitor of Null Output', isDefault: true }] }],
      [NO_SERVER, { supported: true, devices: [], error: 'Generic error in an external library' }],
      ['Auto-detected sources for x11grab:\nCannot list sources: Function not implemented\n', { supported: true, devices: [], error: 'Function not implemented' }],
      // A build without the device prints nothing at all.
      ['', { supported: false, devices: [] }],
      ['Auto-detected sinks for pulse:\r\n* speakers [Speakers] (audio)\r\n', { supported: true, devices: [{ name: 'speakers', description: 'Speakers', isDefault: true }] }],
    ];
    for (const [text, want] of cases) assert.deepEqual(parseDeviceListing(text), want, text);
    assert.deepEqual(
      parseDeviceListing(ALSA_HINTS).devices.map((d) => d.name),
      ['null', 'pulse', 'default', 'hw:CARD=PCH,DEV=0', 'plughw:CARD=PCH,DEV=0', 'sysdefault:CARD=PCH'],
    );
  });

  test('arecord -l: card and device numbers with their long names; subdevice lines and errors ignored', () => {
    assert.deepEqual(parseArecordList(ARECORD), [
      { card: 0, device: 0, cardName: 'HDA Intel PCH', deviceName: 'ALC3246 Analog' },
      { card: 2, device: 0, cardName: 'HD Pro Webcam C920', deviceName: 'USB Audio' },
    ]);
    assert.deepEqual(parseArecordList('arecord: device_list:274: no soundcards found...\n'), []);
    assert.deepEqual(parseArecordList(''), []);
  });

  test('DirectShow: the audio devices, in both of FFmpeg\'s formats, with parentheses in names', () => {
    assert.deepEqual(parseDshowAudio(DSHOW), ['Microphone Array (Realtek(R) Audio)', 'Stereo Mix (Realtek(R) Audio)', 'Capture Card']);
    assert.deepEqual(parseDshowAudio(DSHOW_OLD), ['Microphone (USB Audio Device)']);
    assert.deepEqual(parseDshowAudio(DSHOW.replace(/\n/g, '\r\n')), parseDshowAudio(DSHOW));
    assert.deepEqual(parseDshowAudio('dummy: Immediate exit requested\n'), []);
  });

  test('AVFoundation: the audio section only, index and name; the error after it is not a device', () => {
    assert.deepEqual(parseAvfoundationAudio(AVFOUNDATION), [
      { index: 0, name: 'MacBook Pro Microphone' },
      { index: 1, name: 'BlackHole 2ch' },
    ]);
    assert.deepEqual(parseAvfoundationAudio(AVFOUNDATION_OLD), [{ index: 0, name: 'Built-in Microphone' }]);
    assert.deepEqual(parseAvfoundationAudio('[AVFoundation indev @ 0x1] AVFoundation video devices:\n[AVFoundation indev @ 0x1] [0] FaceTime HD Camera\n'), []);
  });
});

const desktop: LinuxFindings = {
  ffmpegPath: '/usr/bin/ffmpeg',
  sources: parseDeviceListing(PULSE_SOURCES),
  sinks: parseDeviceListing(PULSE_SINKS),
  alsa: [{ name: 'alsa:hw:0,0', description: 'HDA Intel PCH: ALC3246 Analog' }],
};

describe('what --audio list prints', () => {
  test('Linux: the default output\'s monitor is what this machine plays (and what --audio alone takes); other monitors say whose; ALSA as alsa:hw:X,Y', () => {
    const lines = linuxReport(desktop);
    const row = (name: string) => lines.find((l) => l.startsWith(`  --audio ${name} `)) ?? assert.fail(`no row for ${name}:\n${lines.join('\n')}`);
    assert.equal(lines[0], 'PulseAudio/PipeWire sources:');
    assert.match(row('alsa_output.pci-0000_00_1f.3.analog-stereo.monitor'), /what this machine plays \(the default output, Built-in Audio Analog Stereo\): what --audio alone captures$/);
    assert.match(row('alsa_input.pci-0000_00_1f.3.analog-stereo'), /Built-in Audio Analog Stereo; the default source$/);
    assert.match(row('bluez_output.AA_BB_CC_DD_EE_FF.1.monitor'), /what WH-1000XM4 \[LDAC\] plays$/);
    assert.ok(lines.includes('ALSA capture devices:'));
    assert.match(row('alsa:hw:0,0'), /HDA Intel PCH: ALC3246 Analog$/);
    // One column for the notes.
    const pulseRows = lines.slice(1, lines.indexOf('ALSA capture devices:'));
    const columns = pulseRows.map((l) => l.length - l.replace(/^ {2}--audio \S+ +/, '').length);
    assert.equal(new Set(columns).size, 1, lines.join('\n'));
  });

  test('Linux: without the sinks, --audio alone is still explained; without PulseAudio, why, next to the ALSA devices', () => {
    assert.equal(linuxReport({ ...desktop, sinks: parseDeviceListing(NO_SERVER) }).at(-1), '--audio alone captures @DEFAULT_MONITOR@: what the default output plays');
    const alsaOnly = linuxReport({ ...desktop, sources: parseDeviceListing(NO_SERVER), sinks: parseDeviceListing(NO_SERVER) });
    assert.equal(alsaOnly[0], 'ALSA capture devices:');
    assert.match(alsaOnly.at(-1)!, /no PulseAudio or PipeWire server answered \(Generic error in an external library\)/);
  });

  test('Linux: nothing to list is one line saying why and how to name a device', () => {
    const none = linuxReport({ ...desktop, sources: parseDeviceListing(NO_SERVER), sinks: parseDeviceListing(NO_SERVER), alsa: [] });
    assert.equal(none.length, 1);
    assert.match(none[0], /^no sound source to list: no PulseAudio or PipeWire server answered \(Generic error in an external library\) and no ALSA capture device was found; name one with --audio SOURCE .* or --audio alsa:hw:CARD,DEV$/);
    const staticBuild = linuxReport({ ...desktop, sources: parseDeviceListing(''), sinks: parseDeviceListing(''), alsa: [] });
    assert.match(staticBuild[0], /this FFmpeg \(\/usr\/bin\/ffmpeg\) has no PulseAudio input/);
  });

  test('Windows: names quoted for the shell, Stereo Mix marked; without one, how to enable it', () => {
    const lines = windowsReport(parseDshowAudio(DSHOW));
    assert.equal(lines[0], 'DirectShow audio devices:');
    assert.ok(lines.includes('  --audio "Microphone Array (Realtek(R) Audio)"'), lines.join('\n'));
    assert.match(lines.find((l) => l.includes('Stereo Mix'))!, /^ {2}--audio "Stereo Mix \(Realtek\(R\) Audio\)" +what this machine plays$/);
    assert.ok(!lines.some((l) => l.startsWith('None of these')));
    const noMix = windowsReport(parseDshowAudio(DSHOW_OLD));
    assert.match(noMix.at(-1)!, /^None of these is what this machine plays: enable "Stereo Mix" .*virtual capture device/);
    const none = windowsReport([]);
    assert.equal(none.length, 1);
    assert.match(none[0], /^no DirectShow audio device to list .*Stereo Mix.* --audio "Stereo Mix \(…\)"$/);
  });

  test('macOS: index and name, BlackHole marked as a loopback; without one, that system sound needs it', () => {
    const lines = macReport(parseAvfoundationAudio(AVFOUNDATION));
    assert.match(lines[0], /^AVFoundation audio devices \(--audio takes the index or the name\):$/);
    assert.match(lines[1], /^ {2}--audio 0 +MacBook Pro Microphone$/);
    assert.match(lines[2], /^ {2}--audio 1 +BlackHole 2ch: a loopback device/);
    assert.equal(lines.length, 3);
    assert.match(macReport(parseAvfoundationAudio(AVFOUNDATION_OLD)).at(-1)!, /^None of these is what this machine plays: the system's sound needs a loopback device such as BlackHole/);
    assert.match(macReport([])[0], /^no AVFoundation audio device to list .*BlackHole/);
  });

  test('every name listed goes back through --audio to the device FFmpeg listed', () => {
    const flagValue = (flag: string) => {
      const v = flag.slice('--audio '.length);
      return v.startsWith('"') ? v.slice(1, -1).replace(/\\(.)/g, '$1') : v;
    };
    for (const d of parseDeviceListing(PULSE_SOURCES).devices) {
      assert.deepEqual(audioInputArgs(parseAudio(flagValue(audioFlag(d.name)), 'screen')!, 'linux'), ['-f', 'pulse', '-fragment_size', '1920', '-i', d.name]);
    }
    assert.deepEqual(audioInputArgs(parseAudio(flagValue(audioFlag('alsa:hw:2,0')), 'screen')!, 'linux'), ['-f', 'alsa', '-i', 'hw:2,0']);
    for (const name of parseDshowAudio(DSHOW)) {
      assert.deepEqual(audioInputArgs(parseAudio(flagValue(audioFlag(name)), 'screen')!, 'win32'), ['-f', 'dshow', '-i', `audio=${name}`]);
    }
    assert.deepEqual(audioInputArgs(parseAudio('1', 'screen')!, 'darwin'), ['-f', 'avfoundation', '-i', ':1']);
    assert.equal(audioFlag('say "hi" $HOME'), '--audio "say \\"hi\\" \\$HOME"');
  });
});

describe('asking the tools (faked)', () => {
  /** A RunTool answering from a table, recording what was asked. */
  function fake(answers: Record<string, { stdout?: string; stderr?: string; failed?: string }>) {
    const asked: string[] = [];
    const run: RunTool = async (command, args, env) => {
      const key = [command, ...args].join(' ');
      asked.push(key + (env?.LC_ALL ? ` (LC_ALL=${env.LC_ALL})` : ''));
      const a = answers[key] ?? { failed: `${command} failed to start: ${command} not found` };
      return { stdout: a.stdout ?? '', stderr: a.stderr ?? '', failed: a.failed };
    };
    return { run, asked };
  }

  test('Linux: pulse sources and sinks from FFmpeg, ALSA from arecord in the C locale', async () => {
    const { run, asked } = fake({
      'ffmpeg -hide_banner -nostdin -sources pulse': { stdout: PULSE_SOURCES },
      'ffmpeg -hide_banner -nostdin -sinks pulse': { stdout: PULSE_SINKS },
      'arecord -l': { stdout: ARECORD },
    });
    const lines = await listAudioSources('ffmpeg', 'linux', run);
    assert.ok(asked.includes('arecord -l (LC_ALL=C)'), asked.join('\n'));
    assert.ok(lines.some((l) => /^ {2}--audio alsa:hw:2,0 +HD Pro Webcam C920: USB Audio$/.test(l)), lines.join('\n'));
    assert.ok(lines.some((l) => l.includes('what this machine plays')));
  });

  test('Linux without arecord: FFmpeg\'s ALSA hints, their hw: devices', async () => {
    const { run, asked } = fake({
      'ffmpeg -hide_banner -nostdin -sources pulse': { stdout: NO_SERVER },
      'ffmpeg -hide_banner -nostdin -sinks pulse': { stdout: NO_SERVER },
      'ffmpeg -hide_banner -nostdin -sources alsa': { stdout: ALSA_HINTS },
    });
    const lines = await listAudioSources('ffmpeg', 'linux', run);
    assert.ok(asked.includes('ffmpeg -hide_banner -nostdin -sources alsa'));
    assert.deepEqual(lines.slice(0, 2), ['ALSA capture devices:', '  --audio alsa:hw:CARD=PCH,DEV=0  Direct hardware device without any conversions']);
  });

  test('Windows and macOS: the listing is read from stderr', async () => {
    const win = fake({ 'ffmpeg.exe -hide_banner -nostdin -list_devices true -f dshow -i dummy': { stderr: DSHOW } });
    assert.equal((await listAudioSources('ffmpeg.exe', 'win32', win.run))[0], 'DirectShow audio devices:');
    const mac = fake({ 'ffmpeg -hide_banner -nostdin -f avfoundation -list_devices true -i ': { stderr: AVFOUNDATION } });
    assert.match((await listAudioSources('ffmpeg', 'darwin', mac.run))[2], /BlackHole 2ch/);
  });
});

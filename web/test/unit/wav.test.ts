// The Speech tab's recording: samples written as a WAV file the server can decode.

import { describe, expect, it } from "vitest";
import { clock, encodeWav } from "../../src/wav";

describe("encodeWav", () => {
  it("writes a 16-bit mono PCM header and the samples", () => {
    const wav = encodeWav(new Float32Array([0, 1, -1, 0.5, 2]), 16000);
    const view = new DataView(wav.buffer);
    const text = (at: number, n: number) => String.fromCharCode(...wav.slice(at, at + n));
    expect(text(0, 4)).toBe("RIFF");
    expect(text(8, 4)).toBe("WAVE");
    expect(view.getUint32(4, true)).toBe(wav.length - 8);
    expect(view.getUint16(20, true)).toBe(1);
    expect(view.getUint16(22, true)).toBe(1);
    expect(view.getUint32(24, true)).toBe(16000);
    expect(view.getUint32(40, true)).toBe(10);
    const samples = [0, 1, 2, 3, 4].map((i) => view.getInt16(44 + i * 2, true));
    // Clipped to [-1, 1], full scale both ways.
    expect(samples).toEqual([0, 32767, -32768, 16384, 32767]);
  });
});

describe("clock", () => {
  it("shows minutes and tenths, hours when there are any", () => {
    expect(clock(0)).toBe("0:00.0");
    expect(clock(7.26)).toBe("0:07.3");
    expect(clock(61.04)).toBe("1:01.0");
    expect(clock(3725.5)).toBe("1:02:05.5");
  });
});

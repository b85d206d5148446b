import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
// @ts-expect-error plain JavaScript build script
import { OUTFILE, bundle } from "../build.mjs";

describe("the committed bundle", () => {
  it("is exactly what src/ builds to (run `npm run build` and commit it)", async () => {
    expect(readFileSync(OUTFILE, "utf8") === (await bundle())).toBe(true);
  });
  it("stays under 100 KiB gzipped", () => {
    expect(gzipSync(readFileSync(OUTFILE)).length).toBeLessThan(100 * 1024);
  });
});

// Build the cards into one ES module that the integration serves (custom_components/.../frontend).
// `node build.mjs` writes it; `node build.mjs --check` fails when the committed file differs from
// a fresh build (the same check the unit tests run).
import { build } from "esbuild";
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
export const OUTFILE = resolve(here, "../custom_components/smart_reid/frontend/smart-reid-cards.js");

export async function bundle() {
  const result = await build({
    entryPoints: [resolve(here, "src/main.ts")],
    bundle: true,
    format: "esm",
    target: "es2021",
    minify: true,
    legalComments: "eof",
    write: false,
    logLevel: "silent",
  });
  return result.outputFiles[0].text;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const text = await bundle();
  if (process.argv.includes("--check")) {
    const committed = readFileSync(OUTFILE, "utf8");
    if (committed !== text) {
      console.error(`${OUTFILE} is not the build of src/: run npm run build and commit it`);
      process.exit(1);
    }
    console.log("the committed bundle matches src/");
  } else {
    mkdirSync(dirname(OUTFILE), { recursive: true });
    writeFileSync(OUTFILE, text);
    console.log(`wrote ${OUTFILE} (${text.length} bytes)`);
  }
}

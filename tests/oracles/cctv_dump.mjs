// Prints every CCTV age vector exported by the pinned `cctv-age` package as
// one JSON object {name: base64(file)} on stdout.  The Python tests parse the
// vectors themselves; this script only gets them out of the ES module.
import * as vectors from "cctv-age";

const out = {};
for (const [name, data] of Object.entries(vectors)) {
  if (name === "default") continue;
  out[name] = Buffer.from(data).toString("base64");
}
process.stdout.write(JSON.stringify(out));

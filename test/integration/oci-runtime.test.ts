/** machina-oci, the Bun program itself (bin/machina-oci): the suite of oci-runtime-suite.ts. */
import { join } from "node:path";
import { REPO, baseEnv } from "../helpers/machina.ts";
import { ociRuntimeSuite } from "./oci-runtime-suite.ts";

ociRuntimeSuite({ label: "machina-oci", command: join(REPO, "bin/machina-oci"), env: () => baseEnv() });

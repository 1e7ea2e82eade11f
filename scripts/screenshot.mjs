// Screenshot of Label Studio's Data Manager for the demo project, ordered the
// way the queue serves it (unlabeled tasks, prediction score ascending).
// Needs Debian's chromium and playwright-core (npm install playwright-core);
// run with `make demo` up:  node scripts/screenshot.mjs <token> <email> <password> <out.png>
import { chromium } from "playwright-core";

const [token, email, password, out] = process.argv.slice(2);
const LS = "http://127.0.0.1:8080";
const api = (path, init = {}) =>
  fetch(LS + path, { ...init, headers: { Authorization: `Token ${token}`, "Content-Type": "application/json" } })
    .then((r) => r.json());

const projects = await api("/api/projects/");
const project = projects.results.find((p) => p.title.startsWith("Active learning demo"));
const view = await api("/api/dm/views/", {
  method: "POST",
  body: JSON.stringify({
    project: project.id,
    data: {
      title: "Queue (backend order)",
      ordering: ["tasks:predictions_score"],
      filters: { conjunction: "and", items: [
        { filter: "filter:tasks:total_annotations", operator: "equal", type: "Number", value: 0 },
      ] },
      hiddenColumns: { explore: ["tasks:inner_id", "tasks:completed_at", "tasks:cancelled_annotations",
        "tasks:total_predictions", "tasks:annotators", "tasks:annotations_results", "tasks:annotations_ids",
        "tasks:predictions_model_versions", "tasks:file_upload", "tasks:storage_filename", "tasks:created_at",
        "tasks:updated_at", "tasks:updated_by", "tasks:avg_lead_time", "tasks:draft_exists"], labeling: [] },
    },
  }),
});
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run"],
});
const page = await browser.newPage({ viewport: { width: 1500, height: 860 } });
await page.goto(`${LS}/user/login/`);
await page.fill("input[name=email]", email);
await page.fill("input[name=password]", password);
await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
await page.goto(`${LS}/projects/${project.id}/data?tab=${view.id}`);
await page.waitForTimeout(4000);
await page.screenshot({ path: out });
await browser.close();
console.log(`wrote ${out} (project ${project.id}, view ${view.id})`);

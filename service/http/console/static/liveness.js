// The reference capture client for active liveness: open the camera, start a challenge
// session, tell the person each action in turn, post frames one at a time, show the
// outcome; optionally verify the face that passed against a subject.
import { api, credentials } from "./api.js";
import { badge, fill, flash, fmtNum, h, problemText, rawJson } from "./ui.js";
import { galleryPicker } from "./test.js";

const PROMPTS = {
  blink: "Blink",
  turn_left: "Turn your head to your left",
  turn_right: "Turn your head to your right",
  look_up: "Look up",
  smile: "Smile",
  open_mouth: "Open your mouth",
  move_closer: "Move closer to the camera",
};
// About 5 frames a second: enough for the tracker to follow a turn and for a blink to
// be seen, and each frame is posted only after the previous one was answered.
const FRAME_INTERVAL_MS = 200;
// The session has at most this many frames (the server's ChallengePolicy.max_frames).
const MAX_FRAMES = 150;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function grab(video, canvas) {
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  // Unmirrored: the server reads turn_left as the nose moving to the image's right.
  canvas.getContext("2d").drawImage(video, 0, 0);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.9));
}

async function render(view) {
  const me = await api.get("/v1/me");
  document.getElementById("who").replaceChildren(
    h("span", { class: "principal" }, me.name || me.id), h("span", { class: "badge" }, me.role));
  const picker = await galleryPicker(me).catch(() => null);
  const externalId = h("input", { name: "external_id", placeholder: "External id (optional)", spellcheck: "false" });
  const video = h("video", { id: "camera", autoplay: true, muted: true, playsinline: true });
  const canvas = h("canvas", { hidden: true });
  const prompt = h("p", { class: "prompt", id: "prompt", "aria-live": "assertive" }, "Press Start and face the camera.");
  const steps = h("ol", { id: "steps", class: "results" });
  const out = h("div", { id: "live-result", "aria-live": "polite" });
  const start = h("button", { id: "start", type: "button" }, "Start");

  function showSteps(session) {
    const done = session.completed.length;
    fill(steps, ...session.actions.map((a, i) =>
      h("li", null, badge(i < done ? "done" : i === done ? "now" : "next", i < done ? "ok" : ""), ` ${PROMPTS[a] || a}`)));
    if (session.status === "pending") prompt.textContent = PROMPTS[session.actions[done]] || "Hold still";
  }

  async function verify(session) {
    const target = externalId.value.trim();
    if (!target || !picker) return null;
    const form = new FormData();
    form.append("liveness_session", session.id);
    form.append("gallery", picker.value.trim());
    form.append("external_id", target);
    return api.upload("/v1/verify", form);
  }

  async function run() {
    start.disabled = true;
    video.hidden = false;
    canvas.hidden = true;
    fill(out);
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        video: { width: { ideal: 640 }, height: { ideal: 480 }, facingMode: "user" }, audio: false,
      });
    } catch (e) {
      flash(`The camera could not be opened: ${e.message}`);
      start.disabled = false;
      return;
    }
    video.srcObject = stream;
    await video.play();
    let session;
    try {
      session = await api.post("/v1/liveness/sessions");
      showSteps(session);
      const deadline = new Date(session.expires_at).getTime();
      while (session.status === "pending") {
        const began = performance.now();
        const last = Date.now() > deadline - 1500 || session.frames_received >= MAX_FRAMES - 1;
        const form = new FormData();
        form.append("image", await grab(video, canvas), "frame.jpg");
        if (last) form.append("last", "true");
        try {
          session = await api.upload(`/v1/liveness/sessions/${session.id}/frames`, form);
        } catch (e) {
          // The same picture as the last frame (a camera that has not moved on): skip it.
          if (e.status === 409 && String(e.body.type).endsWith("/duplicate-frame")) continue;
          if (e.status === 410) { session = await api.get(`/v1/liveness/sessions/${session.id}`); break; }
          throw e;
        }
        showSteps(session);
        const rest = FRAME_INTERVAL_MS - (performance.now() - began);
        if (rest > 0) await sleep(rest);
      }
      const passed = session.status === "passed";
      prompt.textContent = passed ? "Done." : "The check did not pass.";
      const depth = session.signals?.depth;
      fill(out, 
        h("p", { class: passed ? "decision ok" : "decision fail", id: "live-decision" }, passed ? "Passed" : "Failed"),
        session.reasons.length ? h("ul", { id: "live-reasons" }, session.reasons.map((r) => h("li", null, r))) : null,
        depth ? h("p", { class: "hint" }, `Depth from motion ${fmtNum(depth.score)}${depth.planar ? " (moved as a flat plane)" : ""}`) : null,
        h("p", { class: "hint" }, `${session.frames_received} frames`),
        rawJson(session),
      );
      if (passed) {
        const result = await verify(session);
        if (result) {
          out.append(h("p", { class: result.match ? "decision ok" : "decision fail", id: "live-verify" },
            result.match ? "Same person" : "Not the same person",
            ` — similarity ${fmtNum(result.similarity)} against ${fmtNum(result.threshold)}`));
        }
      }
    } catch (e) {
      fill(out, h("p", { class: "error" }, problemText(e)));
    } finally {
      stream.getTracks().forEach((t) => t.stop());
      // Leave the last frame sent on screen rather than a black, stopped video.
      video.hidden = true;
      canvas.hidden = false;
      start.disabled = false;
      document.body.dataset.finished = session ? session.status : "error";
    }
  }

  start.addEventListener("click", run);
  fill(view, 
    h("div", { class: "split" },
      h("div", null, video, canvas, prompt, steps),
      h("div", null,
        h("form", { class: "card", onsubmit: (e) => e.preventDefault() },
          h("p", { class: "hint" }, "Optionally check the person against a subject once the check has passed."),
          picker ? h("label", null, "Gallery", picker) : null,
          h("label", null, "Subject", externalId),
          start),
        out)),
  );
}

const view = document.getElementById("page");
if (!credentials()) {
  fill(view, h("p", null, "Sign in to the ", h("a", { href: "/console" }, "console"), " first (in this tab)."));
} else {
  render(view).catch((e) => fill(view, h("p", { class: "error" }, problemText(e))))
    .finally(() => { document.body.dataset.ready = "true"; });
}

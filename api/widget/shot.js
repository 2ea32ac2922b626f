// The screenshot: captured from the tab (getDisplayMedia, where the browser allows it) or
// picked, pasted or dropped; shown on a canvas where the reporter drags solid black boxes
// over anything private; re-encoded (PNG, else JPEG, smaller if need be) within 2 MB.

export const MAX_BYTES = 2 * 1024 * 1024;
const MAX_WIDTH = 1920;

/** Whether this browser can capture the tab (not on phones, nor in most iframes). */
export const canCapture = () =>
  Boolean(navigator.mediaDevices && navigator.mediaDevices.getDisplayMedia) && window.isSecureContext;

/** One frame of the tab the reporter picks, as a bitmap. */
export async function capture() {
  const stream = await navigator.mediaDevices.getDisplayMedia({
    video: { displaySurface: "browser" },
    audio: false,
    preferCurrentTab: true,
  });
  try {
    const video = document.createElement("video");
    video.muted = true;
    video.srcObject = stream;
    await video.play();
    return await createImageBitmap(video);
  } finally {
    for (const track of stream.getTracks()) track.stop();
  }
}

/** A bitmap of an image file (picked, pasted or dropped); throws for anything else. */
export async function fromFile(file) {
  if (!file || !/^image\//.test(file.type)) throw new Error("not an image");
  return createImageBitmap(file);
}

/** A canvas showing `bitmap` (at most 1920 px wide) that takes boxes drawn by pointer. */
export function editor(bitmap) {
  const scale = Math.min(1, MAX_WIDTH / bitmap.width);
  const canvas = document.createElement("canvas");
  canvas.width = Math.round(bitmap.width * scale);
  canvas.height = Math.round(bitmap.height * scale);
  const boxes = [];
  let drawing = null;
  const paint = () => {
    const context = canvas.getContext("2d");
    context.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    context.fillStyle = "#000";
    for (const box of drawing ? [...boxes, drawing] : boxes) context.fillRect(box.x, box.y, box.w, box.h);
  };
  // Pointer position in the canvas's own pixels (it is shown smaller).
  const at = (event) => {
    const shown = canvas.getBoundingClientRect();
    return {
      x: ((event.clientX - shown.left) * canvas.width) / shown.width,
      y: ((event.clientY - shown.top) * canvas.height) / shown.height,
    };
  };
  canvas.addEventListener("pointerdown", (event) => {
    const start = at(event);
    drawing = { x: start.x, y: start.y, w: 0, h: 0, start };
    canvas.setPointerCapture(event.pointerId);
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!drawing) return;
    const now = at(event);
    drawing.x = Math.min(drawing.start.x, now.x);
    drawing.y = Math.min(drawing.start.y, now.y);
    drawing.w = Math.abs(now.x - drawing.start.x);
    drawing.h = Math.abs(now.y - drawing.start.y);
    paint();
  });
  const finish = () => {
    if (drawing && drawing.w > 2 && drawing.h > 2) boxes.push({ x: drawing.x, y: drawing.y, w: drawing.w, h: drawing.h });
    drawing = null;
    paint();
  };
  canvas.addEventListener("pointerup", finish);
  canvas.addEventListener("pointercancel", finish);
  paint();
  return {
    canvas,
    boxes,
    /** Adds a box in the image's own pixels (for the keyboard, and for scripts). */
    redact(x, y, w, h) {
      boxes.push({ x: x * scale, y: y * scale, w: w * scale, h: h * scale });
      paint();
    },
    undo() {
      boxes.pop();
      paint();
    },
    /** The redacted image, encoded within 2 MB; throws when it cannot be. */
    async encode() {
      paint();
      return encode(canvas);
    },
  };
}

const blobOf = (canvas, type, quality) => new Promise((resolve) => canvas.toBlob(resolve, type, quality));

async function encode(canvas) {
  let source = canvas;
  for (let attempt = 0; attempt < 4; attempt += 1) {
    for (const [type, quality] of [["image/png"], ["image/webp", 0.9], ["image/jpeg", 0.85]]) {
      const blob = await blobOf(source, type, quality);
      if (blob && blob.type === type && blob.size <= MAX_BYTES) {
        return new File([blob], `screenshot.${type.split("/")[1].replace("jpeg", "jpg")}`, { type });
      }
    }
    // Too big even as JPEG: three quarters the size, and again.
    const smaller = document.createElement("canvas");
    smaller.width = Math.round(source.width * 0.75);
    smaller.height = Math.round(source.height * 0.75);
    smaller.getContext("2d").drawImage(source, 0, 0, smaller.width, smaller.height);
    source = smaller;
  }
  throw new Error("too large");
}

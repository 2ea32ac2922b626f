// The demo page: embeds the widget with the key from the page's address (#key=…), as the one
// line a site adds would, and shows that line.
(() => {
  const key = new URLSearchParams(location.hash.slice(1)).get("key") || "";
  const script = document.createElement("script");
  script.src = "/widget.js";
  script.async = true;
  script.dataset.key = key;
  script.dataset.environment = "demo";
  document.head.append(script);
  // A little layout, through the CSSOM (the page's policy allows no inline style).
  Object.assign(document.body.style, { maxWidth: "38rem", margin: "2rem", font: "16px/1.5 system-ui, sans-serif" });
  Object.assign(document.getElementById("snippet").style, { whiteSpace: "pre-wrap", overflowWrap: "anywhere" });
  document.getElementById("snippet").textContent =
    `<script src="${location.origin}/widget.js" data-key="${key || "sk_live_…"}" async></script>`;
})();

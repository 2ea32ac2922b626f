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
  document.getElementById("snippet").textContent =
    `<script src="${location.origin}/widget.js" data-key="${key || "sk_live_…"}" async></script>`;
})();

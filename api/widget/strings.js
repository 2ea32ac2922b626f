// What the widget says, in English and Spanish; a site replaces any of it with
// Bichito.setStrings({...}) or picks a language with data-locale.

const en = {
  title: "Report a bug",
  close: "Close",
  summary: "Title",
  summaryHint: "What went wrong, in a few words",
  description: "What happened?",
  descriptionHint: "What you did, what you expected, what you saw",
  severity: "How bad is it?",
  severities: { low: "Low", medium: "Medium", high: "High", critical: "Critical" },
  email: "Your e-mail (optional)",
  screenshot: "Screenshot",
  capture: "Capture this tab",
  choose: "Choose an image",
  dropHint: "or paste or drop an image here",
  redactHint: "Drag over anything private to black it out.",
  undo: "Undo box",
  remove: "Remove image",
  send: "Send report",
  sending: "Sending…",
  sent: "Thank you! Your report was sent.",
  savedOffline: "You are offline: the report is saved and will be sent when you are back online.",
  offline: "You are offline.",
  unreachable: "The report could not reach bichito (blocked by the browser or an extension, or this site is not allowed).",
  refused: "The report was not accepted:",
  attachmentFailed: "The report was sent, but not its image:",
  imageTooLarge: "That image cannot be made small enough (2 MB at most).",
  notAnImage: "That file is not an image.",
  poweredBy: "Powered by bichito",
};

const es = {
  title: "Reportar un problema",
  close: "Cerrar",
  summary: "Título",
  summaryHint: "Qué falló, en pocas palabras",
  description: "¿Qué pasó?",
  descriptionHint: "Qué hiciste, qué esperabas, qué viste",
  severity: "¿Qué tan grave es?",
  severities: { low: "Baja", medium: "Media", high: "Alta", critical: "Crítica" },
  email: "Tu correo (opcional)",
  screenshot: "Captura de pantalla",
  capture: "Capturar esta pestaña",
  choose: "Elegir una imagen",
  dropHint: "o pega o suelta una imagen aquí",
  redactHint: "Arrastra sobre lo privado para taparlo en negro.",
  undo: "Deshacer recuadro",
  remove: "Quitar imagen",
  send: "Enviar reporte",
  sending: "Enviando…",
  sent: "¡Gracias! Tu reporte fue enviado.",
  savedOffline: "Sin conexión: el reporte quedó guardado y se enviará cuando vuelvas a estar en línea.",
  offline: "Sin conexión.",
  unreachable: "El reporte no llegó a bichito (lo bloqueó el navegador o una extensión, o este sitio no está permitido).",
  refused: "El reporte no fue aceptado:",
  attachmentFailed: "El reporte se envió, pero no su imagen:",
  imageTooLarge: "No se puede reducir esa imagen lo suficiente (2 MB como máximo).",
  notAnImage: "Ese archivo no es una imagen.",
  poweredBy: "Con la tecnología de bichito",
};

/** The strings for `locale`, with `overrides` on top. */
export function strings(locale, overrides) {
  const base = locale === "es" ? es : en;
  return { ...base, ...(overrides || {}), severities: { ...base.severities, ...((overrides || {}).severities || {}) } };
}

//! `index.html`: a run as one self-contained page that opens in any browser, with no network:
//! the verdict matrix first (every ranked category down, every model across: who leads, how far
//! behind the others are where the data separates them, who could not rank), the advice's
//! prose below it, then the tables (sortable: click a column header), every chart as inline
//! SVG, how the run was made, and links to the run's files. Rendered from the same Markdown
//! parts as summary.md ([`Summary`]) by pulldown-cmark, so the two never disagree.
//!
//! The page records its own script errors on `<html data-errors="N">` and marks
//! `data-ready="1"` once its script has run, which is what `scripts/check-report.sh` checks in
//! headless Chromium.

use std::fmt::Write as _;
use std::path::Path;

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

use echo_analysis::advice::{Matrix, Verdict};

use echo_analysis::run::SuiteRun;

use super::advice::{ineligible, title as category_title};
use super::markdown::{MARK, Summary};

const STYLE: &str = r#"
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222;
       max-width: 1240px; margin: 0 auto; padding: 16px 28px 48px; }
h1 { font-size: 26px; margin-bottom: 4px; }
h2 { margin-top: 36px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { margin-top: 28px; font-size: 17px; }
#advice { background: #f5f8fc; border: 1px solid #d6e2f0; border-radius: 6px; padding: 4px 20px 12px; }
#advice li { margin: 6px 0; }
#verdicts table { font-size: 12px; }
#verdicts th.model { writing-mode: vertical-rl; transform: rotate(180deg); white-space: nowrap; cursor: default; }
#verdicts td { text-align: center; min-width: 26px; }
#verdicts td.category { text-align: left; white-space: nowrap; }
#verdicts td.lead { background: #2e7d32; color: #fff; font-weight: bold; }
#verdicts td.behind { color: #555; }
#verdicts td.no { color: #b71c1c; }
table { border-collapse: collapse; margin: 8px 0 4px; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 4px 8px; }
td:not(:first-child) { text-align: right; white-space: nowrap; }
th { background: #f2f2f2; cursor: pointer; user-select: none; position: sticky; top: 0; }
th[data-order="asc"]::after { content: " \25B2"; font-size: 10px; }
th[data-order="desc"]::after { content: " \25BC"; font-size: 10px; }
tr:nth-child(even) td { background: #fafafa; }
figure { margin: 18px 0 26px; }
figure svg { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 13px; color: #555; margin-bottom: 4px; }
code { background: #f2f2f2; padding: 1px 4px; border-radius: 3px; font-size: 13px; }
.hint { color: #666; font-size: 13px; }
"#;

/// Records script errors on the page before anything else runs.
const ERRORS_SCRIPT: &str = r#"
(function () {
  var errors = [];
  function note(text) {
    errors.push(String(text));
    document.documentElement.setAttribute("data-errors", String(errors.length));
  }
  window.addEventListener("error", function (e) { note(e.message); });
  var original = console.error;
  console.error = function () {
    note(Array.prototype.join.call(arguments, " "));
    original.apply(console, arguments);
  };
})();
"#;

/// Makes every table sortable by its columns: numbers (with k/M suffixes) by value, the rest
/// by text; cells without a number last.
const SORT_SCRIPT: &str = r#"
(function () {
  function key(cell) {
    var text = cell.textContent.trim();
    var m = text.match(/-?\d+(\.\d+)?\s*([kM])?/);
    if (!m) { return null; }
    var v = parseFloat(m[0]);
    if (m[2] === "k") { v *= 1e3; } else if (m[2] === "M") { v *= 1e6; }
    return v;
  }
  document.querySelectorAll("table").forEach(function (table) {
    var headers = table.querySelectorAll("thead th");
    headers.forEach(function (th, column) {
      th.title = "sort by this column";
      th.addEventListener("click", function () {
        var ascending = th.getAttribute("data-order") !== "asc";
        headers.forEach(function (h) { h.removeAttribute("data-order"); });
        th.setAttribute("data-order", ascending ? "asc" : "desc");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = a.cells[column], y = b.cells[column];
          if (column > 0) {
            var kx = key(x), ky = key(y);
            if (kx === null && ky === null) { return 0; }
            if (kx === null) { return 1; }
            if (ky === null) { return -1; }
            return ascending ? kx - ky : ky - kx;
          }
          var c = x.textContent.localeCompare(y.textContent);
          return ascending ? c : -c;
        });
        rows.forEach(function (row) { body.appendChild(row); });
      });
    });
  });
  document.documentElement.setAttribute("data-ready", "1");
})();
"#;

/// `text` with HTML's special characters escaped.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An SVG file's markup for inlining: its XML declaration dropped.
fn inline_svg(path: &Path) -> std::io::Result<String> {
    let text = std::fs::read_to_string(path)?;
    let start = text.find("<svg").ok_or_else(|| {
        std::io::Error::other(format!("{} holds no <svg> element", path.display()))
    })?;
    Ok(text[start..].to_owned())
}

/// `markdown` as HTML, tables included. The Markdown holds strings from run.json (a CPU's
/// model, a server's name and command, a failure's reason), which may come from anyone: raw
/// HTML in it is shown as text, never passed through, and links and images are reduced to their
/// text, so no string can become an element, an attribute or a URL on the page.
fn to_html(markdown: &str) -> String {
    let mut out = String::new();
    let parser = Parser::new_ext(markdown, Options::ENABLE_TABLES);
    pulldown_cmark::html::push_html(
        &mut out,
        parser.filter_map(|event| match event {
            // summary.md's tables are wide: keep cells on one line.
            Event::SoftBreak => Some(Event::Text(" ".into())),
            // Escaped by push_html, as all text is.
            Event::Html(raw) | Event::InlineHtml(raw) => Some(Event::Text(raw)),
            Event::Start(Tag::Link { .. } | Tag::Image { .. })
            | Event::End(TagEnd::Link | TagEnd::Image) => None,
            other => Some(other),
        }),
    );
    out
}

/// The verdict matrix as an HTML table: a filled cell for each category's leading group, this
/// model's figure over the leader's where the data separates them, `✕` (its reason on hover)
/// for a model that could not rank, nothing where it was not measured.
fn verdict_matrix(m: &Matrix) -> String {
    let mut out = String::from("<section id=\"verdicts\">\n<h2>Verdicts at a glance</h2>\n");
    if m.rows.is_empty() {
        out.push_str(
            "<p class=\"hint\">No category of this run ranks the models.</p>\n</section>\n",
        );
        return out;
    }
    out.push_str(
        "<p class=\"hint\">A filled cell: the category's leading group (the models the rounds \
         cannot separate from the best). A number: the model's figure over the leader's, where \
         the data separates them (paired over the rounds). ✕: not eligible (hover for why). \
         The sentences below give every figure and interval.</p>\n<table>\n<thead><tr><th>category \
         (ranked by)</th>",
    );
    for model in &m.models {
        let _ = write!(out, "<th class=\"model\">{}</th>", escape(model.name()));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for (title, measure, verdicts) in &m.rows {
        let _ = write!(
            out,
            "<tr><td class=\"category\">{} <span class=\"hint\">({})</span></td>",
            escape(&category_title(*title)),
            escape(measure.name())
        );
        for v in verdicts {
            match v {
                Verdict::Leading => {
                    out.push_str("<td class=\"lead\" title=\"leading group\">●</td>")
                }
                Verdict::Behind(ratio) => {
                    let _ = write!(
                        out,
                        "<td class=\"behind\" title=\"{ratio:.2}× the leader's {}\">{ratio:.2}×</td>",
                        escape(measure.name())
                    );
                }
                Verdict::Ineligible(why) => {
                    let _ = write!(
                        out,
                        "<td class=\"no\" title=\"not eligible: {}\">✕</td>",
                        escape(&ineligible(*why))
                    );
                }
                Verdict::Absent => out.push_str("<td class=\"absent\"></td>"),
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
    out
}

/// The charts, each inline under its file name.
fn charts_html(dir: &Path, charts: &[String]) -> std::io::Result<String> {
    let mut out = String::new();
    for name in charts {
        let _ = writeln!(
            out,
            "<figure><figcaption><a href=\"{0}\">{0}</a></figcaption>{1}</figure>",
            escape(name),
            inline_svg(&dir.join(name))?
        );
    }
    Ok(out)
}

/// The page of the run stored in `dir`, from its summary's parts and its verdict matrix;
/// `histograms` is its latency.hlog, if written.
pub fn page(
    run: &SuiteRun,
    dir: &Path,
    summary: &Summary,
    matrix: &Matrix,
    histograms: Option<&Path>,
) -> std::io::Result<String> {
    let title = summary
        .title
        .trim()
        .trim_start_matches('#')
        .trim()
        .to_owned();
    let mut files = String::from(
        "<ul><li><a href=\"run.json\">run.json</a>: every trial's full report (latency \
         histograms included, base64 of HdrHistogram's V2 encoding) and the environment</li>\
         <li><a href=\"summary.md\">summary.md</a>: this page as Markdown</li>\
         <li><a href=\"README.md\">README.md</a>: how the run was made</li>",
    );
    if let Some(hlog) = histograms.and_then(Path::file_name) {
        let _ = write!(
            files,
            "<li><a href=\"{0}\">{0}</a>: each point's latency histograms, merged over the \
             rounds, in HdrHistogram's interval-log format (tag: point/model)</li>",
            escape(&hlog.to_string_lossy())
        );
    }
    files.push_str("</ul>");
    let mut html = String::new();
    let _ = write!(
        html,
        "<!DOCTYPE html>\n{mark}\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<script>{ERRORS_SCRIPT}</script>\n<style>{STYLE}</style>\n\
         </head>\n<body>\n<h1>{title}</h1>\n<p class=\"hint\">{when}, {machine}. Command: \
         <code>{command}</code></p>\n{verdicts}<section id=\"advice\">\n{advice}</section>\n\
         <section id=\"results\">\n<h2>Results</h2>\n<p class=\"hint\">Click a column header to \
         sort the table by it.</p>\n{results}</section>\n<section id=\"charts\">\n<h2>Charts</h2>\n\
         {charts}</section>\n<section id=\"about\">\n<h2>How this run was made</h2>\n{about}\
         <h3>Files</h3>\n{files}\n</section>\n<script>{SORT_SCRIPT}</script>\n</body>\n</html>\n",
        mark = MARK,
        title = escape(&title),
        when = escape(&run.meta.time),
        machine = escape(&format!(
            "{} ({} cores), host {}",
            run.meta.cpu_model, run.meta.cores, run.meta.host
        )),
        command = escape(&run.command),
        verdicts = verdict_matrix(matrix),
        advice = to_html(&summary.advice),
        results = to_html(&summary.results),
        charts = charts_html(dir, &summary.charts)?,
        about = to_html(&summary.about),
    );
    Ok(html)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_tables_become_html_tables() {
        let html = to_html("| model | a |\n|---|---:|\n| **tokio** | 1.5k ±3% |\n");
        assert!(html.contains("<table>"), "{html}");
        assert!(html.contains("<strong>tokio</strong>"), "{html}");
        assert!(
            html.contains("<th style=\"text-align: right\">a</th>"),
            "{html}"
        );
    }

    #[test]
    fn raw_html_and_links_in_the_markdown_stay_text() {
        let html = to_html(
            "cpu <script>alert(1)</script> and <img src=x onerror=alert(2)>\n\n\
             <div onclick=\"x()\">block</div>\n\n[click](javascript:alert(3)) ![i](x.png)\n",
        );
        for element in ["<script", "<img", "<div", "<a ", "href"] {
            assert!(!html.contains(element), "{element} in {html}");
        }
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(html.contains("<p>click i</p>"), "{html}");
    }

    #[test]
    fn free_text_from_a_run_is_shown_as_written() {
        let text = "**x** `y` <b>z</b> [a](b) ![c](d) _e_ | f &amp; g\n# h";
        let html = to_html(&format!(
            "about: {}\n",
            super::super::markdown::md_text(text)
        ));
        for markup in [
            "<strong", "<em", "<code", "<b>", "<a ", "<img", "<h1", "<table",
        ] {
            assert!(!html.contains(markup), "{markup} in {html}");
        }
        assert!(
            html.contains("**x** `y` &lt;b&gt;z&lt;/b&gt; [a](b) ![c](d) _e_ | f &amp;amp; g # h"),
            "{html}"
        );
    }

    #[test]
    fn the_scripts_are_inline_and_reach_nothing_outside() {
        for script in [ERRORS_SCRIPT, SORT_SCRIPT, STYLE] {
            assert!(!script.contains("http"), "{script}");
            assert!(!script.contains("</script"), "{script}");
        }
    }

    #[test]
    fn the_verdict_matrix_fills_the_leaders_and_marks_the_rest() {
        use echo_analysis::advice::Title;
        use echo_analysis::aggregate::{Ineligible, Measure};
        use echo_servers::Model;
        let m = Matrix {
            models: vec![
                Model::Blocking.into(),
                Model::Mio.into(),
                Model::Tokio.into(),
            ],
            rows: vec![(
                Title::Churn { resumed: false },
                Measure::ConnectionRate,
                vec![
                    Verdict::Ineligible(Ineligible::Failed),
                    Verdict::Leading,
                    Verdict::Behind(0.625),
                ],
            )],
        };
        let html = verdict_matrix(&m);
        assert!(html.contains("<td class=\"lead\""), "{html}");
        assert!(
            html.contains(">0.62×</td>") || html.contains(">0.63×</td>"),
            "{html}"
        );
        assert!(
            html.contains("title=\"not eligible: failed\">✕</td>"),
            "{html}"
        );
        assert!(html.contains("Connection churn"), "{html}");
        let doc = roxmltree::Document::parse(&html).expect("well-formed");
        let cells = doc.descendants().filter(|n| n.has_tag_name("td")).count();
        assert_eq!(cells, 4, "the category and one cell per model");
        let empty = verdict_matrix(&Matrix {
            models: Vec::new(),
            rows: Vec::new(),
        });
        assert!(empty.contains("No category of this run ranks"), "{empty}");
    }
}

//! Plain-text tables in the style of `patronictl list`.

/// Render rows under a header, with `+---+` borders and columns padded to their widest cell.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let border = format!(
        "+{}+",
        widths
            .iter()
            .map(|w| "-".repeat(w + 2))
            .collect::<Vec<_>>()
            .join("+")
    );
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!(" {c}{} ", " ".repeat(w - c.chars().count())))
            .collect();
        format!("|{}|", padded.join("|"))
    };
    let mut out = vec![border.clone(), line(header.to_vec()), border.clone()];
    for row in rows {
        out.push(line(row.iter().map(String::as_str).collect()));
    }
    out.push(border);
    out.join("\n")
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_fit_the_widest_cell() {
        let t = super::render(&["Member", "Role"], &[vec!["node1".into(), "leader".into()]]);
        assert_eq!(
            t,
            "+--------+--------+\n| Member | Role   |\n+--------+--------+\n| node1  | leader |\n+--------+--------+"
        );
    }
}

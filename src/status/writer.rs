//! A small streaming JSON writer: the status document is built field by field, with
//! strings escaped, and no intermediate tree.

use crate::config::json::quote_into;

pub struct JsonWriter {
    out: String,
    /// Per open container: whether the next value needs a comma before it.
    comma: Vec<bool>,
    /// A key was just written; the value follows without a comma.
    after_key: bool,
}

impl Default for JsonWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl JsonWriter {
    pub fn new() -> JsonWriter {
        JsonWriter {
            out: String::new(),
            comma: Vec::new(),
            after_key: false,
        }
    }

    fn sep(&mut self) {
        if self.after_key {
            self.after_key = false;
            return;
        }
        if let Some(c) = self.comma.last_mut() {
            if *c {
                self.out.push(',');
            }
            *c = true;
        }
    }

    pub fn key(&mut self, k: &str) -> &mut Self {
        self.sep();
        quote_into(&mut self.out, k);
        self.out.push(':');
        self.after_key = true;
        self
    }

    pub fn str(&mut self, s: &str) -> &mut Self {
        self.sep();
        quote_into(&mut self.out, s);
        self
    }

    pub fn num(&mut self, n: u64) -> &mut Self {
        self.sep();
        self.out.push_str(&n.to_string());
        self
    }

    /// A number with one decimal place (a rate); anything not finite writes 0.
    pub fn decimal1(&mut self, v: f64) -> &mut Self {
        self.sep();
        let v = if v.is_finite() { v } else { 0.0 };
        self.out.push_str(&format!("{v:.1}"));
        self
    }

    pub fn bool(&mut self, b: bool) -> &mut Self {
        self.sep();
        self.out.push_str(if b { "true" } else { "false" });
        self
    }

    pub fn null(&mut self) -> &mut Self {
        self.sep();
        self.out.push_str("null");
        self
    }

    /// A string, or null.
    pub fn opt_str(&mut self, s: Option<&str>) -> &mut Self {
        match s {
            Some(s) => self.str(s),
            None => self.null(),
        }
    }

    /// A number, or null.
    pub fn opt_num(&mut self, n: Option<u64>) -> &mut Self {
        match n {
            Some(n) => self.num(n),
            None => self.null(),
        }
    }

    pub fn begin_obj(&mut self) -> &mut Self {
        self.sep();
        self.out.push('{');
        self.comma.push(false);
        self
    }

    pub fn end_obj(&mut self) -> &mut Self {
        self.comma.pop();
        self.out.push('}');
        self
    }

    pub fn begin_arr(&mut self) -> &mut Self {
        self.sep();
        self.out.push('[');
        self.comma.push(false);
        self
    }

    pub fn end_arr(&mut self) -> &mut Self {
        self.comma.pop();
        self.out.push(']');
        self
    }

    pub fn finish(self) -> String {
        self.out
    }
}

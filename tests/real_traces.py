"""Hand-written traces in the formats real reasoning teachers write, each labelled.

Written by the project (not copied from any model), in the styles of thinking models (a
``<think>`` block, "Wait", long self-corrections), chat models (markdown headings, bold,
tables, LaTeX) and code-writing models (fenced Python). ``reason`` is None for a good trace the
quality filter must keep, else the reason it must give when rejecting it.
"""
from __future__ import annotations


def trace(name: str, problem: str, gold: str, text: str, reason: str | None = None, **extra) -> dict:
    return {"name": name, "problem_id": name, "problem": problem, "gold": gold, "text": text.strip("\n"),
            "reason": reason, "domain": "97", **extra}


SOLVE = "Solve 2x + 3 = -7 for x."
PENS = "Mia buys 12 pens at $4 each and a $2 notebook. How much does she spend?"
SPLIT = "Three friends split a $10 bill equally. How much does each pay, to the nearest cent?"
SQUARES = "What is the sum of the squares of the first 10 positive integers?"
ROOT = "Find the larger root of x^2 - 5x + 6 = 0."
APPLES = "A crate holds 7 boxes of 3 apples, and 8 more apples are added. How many apples are there?"

GOOD = [
    trace("markdown_bold_negative", SOLVE, "-5", r"""
## Solution

**Step 1:** Subtract 3 from both sides: 2x = -7 - 3 = -10.

**Step 2:** Divide by 2: x = -10 / 2 = -5.

**Check:** 2(-5) + 3 = -10 + 3 = -7 ✓

**Final Answer:** $\boxed{-5}$
"""),
    trace("negative_numbers_prose", SOLVE, "-5", r"""
We need x. Moving the 3 over gives 2x = -10, so x = -5, and indeed 2 * -5 + 3 = -7.
Also 5 - 8 = -3 and -3 * -2 = 6 would not change anything here.
Final Answer: \boxed{-5}
"""),
    trace("latex_frac_cdot", "What is three quarters of 12?", "9", r"""
Three quarters of 12 is $\frac{3}{4} \cdot 12$.

$$\frac{3}{4} \cdot 12 = \frac{36}{4}, \qquad \frac{36}{4} = 9.$$

Equivalently $3 \times 12 \div 4 = 9$, and \(12 \cdot \frac{3}{4} = 9\).

Therefore the answer is $\boxed{9}$.
"""),
    trace("rounded_decimals", SPLIT, "3.33", r"""
Each friend pays 10 / 3 = 3.33 dollars (10 / 3 = 3.333..., rounded to the nearest cent).
To two places, 2 / 3 ≈ 0.67 of the bill is what the other two pay, and 1 / 7 = 0.142857... is not needed.
Final Answer: \boxed{3.33}
"""),
    trace("fenced_code", SQUARES, "385", r"""
Let me compute it with a short program.

```python
total = 0
for n in range(1, 11):
    total += n ** 2
half = total // 2
print(total, half)
```

It prints `385 192`. The formula agrees: n(n + 1)(2n + 1) / 6 with n = 10 is 10 * 11 * 21 / 6 = 385.

**Final Answer:** \boxed{385}
"""),
    trace("think_block", APPLES, "29", r"""
<think>
Okay, so there are 7 boxes with 3 apples each. 7 * 3 = 21. Then 8 more: 21 + 8 = 29.
Hmm, so the answer would be \boxed{21}? Wait, no, that forgets the 8 added apples. It is 29.
Let me double-check: 29 - 8 = 21 and 21 / 3 = 7 boxes. Yes.
</think>

The crate has 7 * 3 = 21 apples, and 21 + 8 = 29 after adding 8.

$\boxed{29}$
"""),
    trace("redone_slip", APPLES, "29", r"""
Strategy: count the boxed apples, then add the loose ones.
Step 1: 7 * 3 = 24 apples in boxes.
Step 2: 24 + 8 = 32.
Wait, 7 * 3 is not 24. Let me redo it.
Step 1: 7 * 3 = 21 apples in boxes.
Step 2: 21 + 8 = 29.
Final Answer: \boxed{29}
"""),
    trace("slip_taken_back", PENS, "50", r"""
The pens cost 12 * 4 = 46 dollars. Actually, 12 * 4 is 48, not 46.
Adding the notebook: 48 + 2 = 50.
Final Answer: \boxed{50}
"""),
    trace("long_self_correction", PENS, "50", r"""
<think>
Let me set this up. Each pen is $4 and there are 12 pens.
12 * 4 = 44. Then the notebook: 44 + 2 = 46.
So the total is 46? Let me double-check the multiplication, since 12 * 4 feels bigger than 44.
10 * 4 = 40 and 2 * 4 = 8, so 40 + 8 = 48. Right, I dropped 4 before: the pens cost 48, not 44.
Then 48 + 2 = 50. Is that right? 50 - 2 = 48 and 48 / 12 = 4 dollars a pen. Yes.
</think>

**Pens:** 12 × 4 = 48 dollars
**Notebook:** 2 dollars
**Total:** 48 + 2 = 50 dollars

The answer is 50.

\boxed{50}
"""),
    trace("chained_sums", "Add 3, 4 and 5, then multiply 2, 3 and 4; what is the difference?", "12", r"""
First, 3 + 4 + 5 = 12. Next, 2 * 3 * 4 = 24. The difference is 24 - 12 = 12, and 100 - 20 - 30 = 50
is unrelated. (3 + 4) * 2 = 14 as well.
Final Answer: \boxed{12}
"""),
    trace("currency_gsm8k", PENS, "50", r"""
Mia spends 12 x $4 = $48 on pens.
Then $48 + $2 = $50.
She spends $50 in total.
#### 50
Final Answer: \boxed{50}
"""),
    trace("thousands_separators", "A town has 1,200 adults and 350 children. How many people?", "1550", r"""
1,200 + 350 = 1,550 people, and 1{,}550 - 350 = 1{,}200 confirms it.
Final Answer: \boxed{1,550}
"""),
    trace("markdown_table_rule", PENS, "50", r"""
### Costs

| item | count | cost |
|------|:-----:|-----:|
| pen | 12 | 12 * 4 = 48 |
| notebook | 1 | 2 |

---

*Total*: 48 + 2 = 50.

- pens: 48
- notebook: 2

**Answer:** $\boxed{50}$
"""),
    trace("gemini_numbered", PENS, "50", r"""
**1. Understand the problem:** Mia buys pens and a notebook.

**2. Pens:**
* Cost per pen: $4
* Number of pens: 12
* Total for pens: $4 * 12 = $48

**3. Total:** $48 + $2 = $50

**Answer:** The answer is 50. $\boxed{50}$
"""),
    trace("latex_quadratic", ROOT, "3", r"""
Factor: $x^2 - 5x + 6 = (x - 2)(x - 3) = 0$, so $x = 2$ or $x = 3$.
The quadratic formula agrees: \[ x = \frac{5 \pm \sqrt{25 - 24}}{2} = \frac{5 \pm 1}{2}. \]
The larger root is $\boxed{3}$.
"""),
    trace("fraction_answer_equivalent", "What fraction of 8 is 4?", "0.5", r"""
4 / 8 = 0.5, that is one half.
Final Answer: $\boxed{\frac{1}{2}}$
"""),
    trace("percent_and_decimals", "What is 20% of 80, and what do 3 notebooks at $2.50 cost?", "16", r"""
20% of 80 is 0.2 * 80 = 16. Three notebooks cost 3 * 2.50 = 7.50 dollars.
The question asks for the first: \boxed{16}
"""),
    trace("answer_restated_after_box", PENS, "50", r"""
12 * 4 = 48 and 48 + 2 = 50.

\boxed{50}

So the final answer is 50.
"""),
    trace("stated_then_revised", PENS, "50", r"""
12 * 4 = 48, so the answer is 48. Wait, that leaves out the notebook: 48 + 2 = 50.
Final Answer: \boxed{50}
"""),
    trace("url_and_arrow", SQUARES, "385", r"""
The formula (see https://oeis.org/A000330) gives n(n + 1)(2n + 1)/6 -> 10 * 11 * 21 / 6 = 385.
Final Answer: \boxed{385}
"""),
]

DEFECTS = [
    trace("wrong_product_carried", PENS, "50", r"""
**Step 1:** The pens cost 12 * 4 = 46 dollars.
**Step 2:** With the notebook, 46 + 2 = 48.
**Final Answer:** $\boxed{48}$
""", "arithmetic_error"),
    trace("slip_with_unrelated_cue", PENS, "50", r"""
The pens cost 12 * 4 = 46 dollars. Let me double-check the addition: 46 + 2 = 48. Yes.
Final Answer: \boxed{48}
""", "arithmetic_error"),
    trace("misrounded_decimal", SPLIT, "3.33", r"""
Each friend pays 10 / 3 = 3.34 dollars.
Final Answer: \boxed{3.33}
""", "arithmetic_error"),
    trace("negative_sign_slip", SOLVE, "-5", r"""
x = -5, so 2 * -5 = 10 and 10 + 3 = 13.
Final Answer: \boxed{-5}
""", "arithmetic_error"),
    trace("cut_off_by_length", SQUARES, "385", r"""
We add the squares one by one: 1 + 4 = 5, 5 + 9 = 14, 14 + 16 = 30, 30 + 25 = 55, and then
""", "truncated", finish_reason="length"),
    trace("unclosed_think", APPLES, "29", r"""
<think>
Okay, 7 * 3 = 21 apples in the boxes, and then the 8 more make
""", "truncated"),
    trace("no_boxed_answer", PENS, "50", r"""
**Pens:** 12 × 4 = 48
**Total:** 48 + 2 = 50
**Final Answer:** 50
""", "missing_answer"),
    trace("answer_only_inside_think", APPLES, "29", r"""
<think>
7 * 3 = 21 and 21 + 8 = 29, so \boxed{29}.
</think>

I have solved it above.
""", "missing_answer"),
    trace("stated_answer_disagrees", PENS, "50", r"""
12 * 4 = 48 and 48 + 2 = 50.
The answer is 48.
\boxed{50}
""", "contradictory_answer"),
    trace("two_boxed_answers", ROOT, "3", r"""
$(x - 2)(x - 3) = 0$.
Final Answer: $\boxed{3}$ or $\boxed{2}$
""", "multiple_answers"),
    trace("unclosed_code_fence", SQUARES, "385", r"""
```python
print(sum(n ** 2 for n in range(1, 11)))

It prints 385.
Final Answer: \boxed{385}
""", "broken_format"),
    trace("two_think_ends", APPLES, "29", r"""
<think>
7 * 3 = 21, 21 + 8 = 29.
</think>
</think>
\boxed{29}
""", "broken_format"),
    trace("unclosed_dollar", SOLVE, "-5", r"""
Subtracting 3 gives $2x = -10, so $x = -5$.
Final Answer: \boxed{-5}
""", "unbalanced_brackets"),
    trace("unclosed_box", PENS, "50", r"""
12 * 4 = 48 and 48 + 2 = 50.
**Final Answer:** \boxed{50
""", "unbalanced_brackets"),
    trace("operator_then_equals", PENS, "50", r"""
**Step 1:** 12 * 4 = 48.
**Step 2:** 48 + = 50.
**Final Answer:** \boxed{50}
""", "broken_expression"),
    trace("restated_value_disagrees", APPLES, "29", r"""
Step 1: 7 * 3 = 21 (boxed apples)
So boxed apples is 24.
Step 2: 21 + 8 = 29 (apples)
Final Answer: \boxed{29}
""", "self_contradiction"),
    trace("consistent_but_wrong", APPLES, "29", r"""
**Step 1:** 7 * 3 = 21 apples in the boxes.
**Step 2:** The 8 added apples are ignored.
**Final Answer:** $\boxed{21}$
""", "wrong_answer"),
]

ALL = GOOD + DEFECTS

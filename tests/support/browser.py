#!/usr/bin/python3
"""Drives a real headless Chromium (Debian's chromium + chromium-driver, python3-selenium)
through seakeeper's pages, for tests/web.rs.

    browser.py BASE_URL BUILD_ID JOB [SCREENSHOT_DIR]

1. The status page renders the gate queue (an item of queue `project:acme/api`).
2. In a second tab, the live console of BUILD_ID's JOB shows new lines while the job is still
   running, then its end; the log's `<script>` lines are shown as text and never run.
3. The status page, never reloaded, updates itself: the landed item leaves the queue.
Prints one JSON object with what it saw; exits non-zero with the reason when a check fails.
"""

import json
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

base, build, job = sys.argv[1], sys.argv[2], sys.argv[3]
shots = sys.argv[4] if len(sys.argv) > 4 else None

options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
          "--window-size=1280,900"):
    options.add_argument(a)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
seen = {}


def wait(what, cond, timeout=30.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            v = cond()
            if v:
                return v
        except Exception:  # the page may be mid-update
            pass
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {what}; page: {driver.page_source[:3000]}")


try:
    driver.get(base + "/")
    status_tab = driver.current_window_handle
    wait("a gate queue item on the status page",
         lambda: driver.find_elements(By.CSS_SELECTOR, "div.queue[data-queue] tr.item"))
    seen["queue"] = driver.find_element(By.CSS_SELECTOR, "div.queue").get_attribute("data-queue")
    wait("the status stream to connect",
         lambda: int(driver.execute_script("return +(document.body.dataset.updates||0)")) >= 1)
    if shots:
        driver.save_screenshot(f"{shots}/status.png")

    driver.switch_to.new_window("tab")
    driver.get(f"{base}/builds/{build}/jobs/{job}/live")
    # Lines arrive while the job runs: at least one line, and no end yet.
    wait("a live line before the job ends",
         lambda: driver.execute_script(
             "return document.querySelectorAll('#log div').length > 0 && !document.body.dataset.ended"))
    first = driver.execute_script("return document.querySelectorAll('#log div').length")
    wait("more lines while the job still runs",
         lambda: driver.execute_script(
             "return document.querySelectorAll('#log div').length > arguments[0]", first))
    seen["lines_while_running"] = driver.execute_script(
        "return document.querySelectorAll('#log div').length")
    seen["ended_while_counting"] = driver.execute_script("return document.body.dataset.ended || null")
    if shots:
        driver.save_screenshot(f"{shots}/live.png")
    ended = wait("the job's end", lambda: driver.execute_script("return document.body.dataset.ended"),
                 timeout=60)
    seen["ended"] = ended
    seen["lines"] = driver.execute_script("return document.querySelectorAll('#log div').length")
    seen["pwned"] = driver.execute_script("return window.pwned || null")
    seen["scripts_in_log"] = driver.execute_script("return document.querySelectorAll('#log script, #log img').length")
    seen["text_has_script"] = "<script>" in driver.find_element(By.ID, "log").text
    seen["coloured"] = len(driver.find_elements(By.CSS_SELECTOR, "#log span.fg2"))

    # Back on the status page, never reloaded: the change lands and its item leaves the queue.
    driver.switch_to.window(status_tab)
    wait("the landed item to leave the status page without a reload",
         lambda: not driver.find_elements(By.CSS_SELECTOR, "div.queue tr.item"), timeout=60)
    seen["updates"] = int(driver.execute_script("return +(document.body.dataset.updates||0)"))
    print(json.dumps(seen))
finally:
    driver.quit()

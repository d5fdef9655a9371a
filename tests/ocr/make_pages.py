"""Test pages for the OCR model, with what is on them and what RapidOCR reads on them.

Usage: make_pages.py OUT_DIR MODEL_DIR (det.onnx, cls.onnx, rec.onnx from the wheel)

Renders pages of known Chinese and English lines in several fonts from Debian packages
(DejaVu, Liberation, WenQuanYi, AR PL UMing): clean pages, a tilted page, a page upside
down, a photo-like page (uneven light, blur, noise, JPEG), a thin strip and a page with
an alpha channel. Writes each page (PNG or JPEG) and `pages.json`: per page, the lines
rendered (top to bottom) and the lines `rapidocr-onnxruntime` reads with the same model
files (text, score, box), the reference the Rust pipeline and the server are held to.
"""

import io
import json
import random
import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONTS = {
    "dejavu-sans": "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "dejavu-serif": "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf",
    "liberation-sans": "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "liberation-serif": "/usr/share/fonts/truetype/liberation/LiberationSerif-Regular.ttf",
    "wqy-microhei": "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "wqy-zenhei": "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "ar-pl-uming": "/usr/share/fonts/truetype/arphic/uming.ttc",
}
LATIN = ["dejavu-sans", "dejavu-serif", "liberation-sans", "liberation-serif", "wqy-microhei"]
CJK = ["wqy-microhei", "wqy-zenhei", "ar-pl-uming"]

ENGLISH = [
    "The quarterly report is due on Friday",
    "Invoice number 48213 was paid in full",
    "Please call the office before noon",
    "Shipping address: 221 Baker Street",
    "Total amount 1,250.00 USD",
    "Meeting moved to room 4B",
    "All passengers must show a valid ticket",
    "Store below 25 degrees in a dry place",
    "Version 2.3 fixes the login error",
    "Keep this receipt for your records",
    "Open Monday to Saturday 9am to 6pm",
    "Thank you for choosing our service",
]
CHINESE = [
    "今天天气很好",
    "请在周五之前提交报告",
    "北京市海淀区中关村大街",
    "发票金额为一千二百元",
    "会议改在下午三点举行",
    "欢迎光临本店",
    "请保管好您的收据",
    "营业时间为早上九点到晚上六点",
    "本产品请存放在阴凉干燥处",
    "感谢您选择我们的服务",
    "机器学习模型的部署",
    "上海浦东国际机场",
]


def font(name, size):
    return ImageFont.truetype(FONTS[name], size)


def page(lines, width=900, size=34, gap=30, margin=40, background=(255, 255, 255)):
    """A white page with one line per (text, font name), top to bottom."""
    height = margin * 2 + len(lines) * (size + gap)
    img = Image.new("RGB", (width, height), background)
    d = ImageDraw.Draw(img)
    y = margin
    for text, name in lines:
        d.text((margin, y), text, font=font(name, size), fill=(20, 20, 20))
        y += size + gap
    return img


def photo_like(img, seed):
    """Uneven light, a slight blur, sensor noise, then JPEG."""
    rnd = random.Random(seed)
    w, h = img.size
    shade = Image.linear_gradient("L").resize((w, h)).point(lambda v: 200 + v * 55 // 255)
    img = Image.composite(img, Image.new("RGB", (w, h), (0, 0, 0)), shade)
    img = img.filter(ImageFilter.GaussianBlur(0.8))
    px = img.load()
    for _ in range(w * h // 12):
        x, y = rnd.randrange(w), rnd.randrange(h)
        r, g, b = px[x, y]
        n = rnd.randint(-40, 40)
        px[x, y] = (max(0, min(255, r + n)), max(0, min(255, g + n)), max(0, min(255, b + n)))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=85)
    return out.getvalue()


def png(img):
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def pages():
    rnd = random.Random(7)
    made = []
    # Clean pages, each font.
    for name in LATIN:
        lines = [(t, name) for t in rnd.sample(ENGLISH, 6)]
        made.append((f"en-{name}.png", png(page(lines)), [t for t, _ in lines]))
    for name in CJK:
        lines = [(t, name) for t in rnd.sample(CHINESE, 6)]
        made.append((f"zh-{name}.png", png(page(lines)), [t for t, _ in lines]))
    # Chinese and English mixed on one page.
    mixed = [(ENGLISH[0], "dejavu-sans"), (CHINESE[1], "wqy-zenhei"), (ENGLISH[3], "liberation-serif"),
             (CHINESE[2], "ar-pl-uming"), (ENGLISH[4], "wqy-microhei")]
    made.append(("mixed.png", png(page(mixed)), [t for t, _ in mixed]))
    # A tilted page and a page upside down.
    lines = [(t, "liberation-sans") for t in ENGLISH[6:11]]
    tilted = page(lines).rotate(4, expand=True, fillcolor=(255, 255, 255), resample=Image.BICUBIC)
    made.append(("en-tilted.png", png(tilted), [t for t, _ in lines]))
    lines = [(t, "wqy-microhei") for t in CHINESE[6:11]]
    made.append(("zh-upside-down.png", png(page(lines).rotate(180)), [t for t, _ in lines]))
    # Photo-like pages.
    lines = [(t, "dejavu-serif") for t in ENGLISH[1:6]]
    made.append(("en-photo.jpg", photo_like(page(lines, background=(238, 232, 220)), 1), [t for t, _ in lines]))
    lines = [(t, "wqy-zenhei") for t in CHINESE[0:5]]
    made.append(("zh-photo.jpg", photo_like(page(lines, background=(240, 236, 226)), 2), [t for t, _ in lines]))
    # A thin strip (padded before detection) and a transparent page.
    strip = page([(ENGLISH[7], "dejavu-sans")], width=760, size=22, gap=0, margin=6)
    made.append(("strip.png", png(strip), [ENGLISH[7]]))
    lines = [(t, "dejavu-sans") for t in ENGLISH[8:12]]
    clear = page(lines).convert("RGBA")
    clear.putdata([(r, g, b, 0 if r > 250 else 255) for r, g, b, _ in clear.getdata()])
    made.append(("transparent.png", png(clear), [t for t, _ in lines]))
    return made


def main():
    out = Path(sys.argv[1])
    models = Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    from rapidocr_onnxruntime import RapidOCR

    engine = RapidOCR(
        det_model_path=str(models / "det.onnx"),
        cls_model_path=str(models / "cls.onnx"),
        rec_model_path=str(models / "rec.onnx"),
    )
    index = []
    for name, data, truth in pages():
        (out / name).write_bytes(data)
        img = Image.open(io.BytesIO(data))
        if img.mode == "RGBA":
            # What a reader sees (and what aiaas reads): the page laid over white.
            white = Image.new("RGB", img.size, (255, 255, 255))
            white.paste(img, mask=img.split()[3])
            img = white
        result, _ = engine(png(img.convert("RGB")))
        lines = [{"text": t, "confidence": float(s), "box": [[float(x), float(y)] for x, y in b]}
                 for b, t, s in (result or [])]
        index.append({"file": name, "truth": truth, "rapidocr": lines})
    (out / "pages.json").write_text(json.dumps(index, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()

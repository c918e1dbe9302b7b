#!/usr/bin/env python3
"""Builds the tokenizer fixtures in tests/fixtures/wan/t5/ with Debian's sentencepiece tools.

  python3 tests/reference/gen_tokenizer_fixtures.py [OUTDIR]

1. Generates a deterministic training corpus and a separate set of test lines (accents, CJK,
   kana, Hangul, scripts with combining marks, emoji with ZWJ/skin tones/flags, ASCII and
   full-width punctuation, NFKC-sensitive forms, runs of mixed whitespace, very long lines,
   characters never seen in training, a few invalid UTF-8 bytes).
2. Trains small unigram models with spm_train, laid out like umT5 (pad 0, eos 1, unk 2, no bos):
     nfkc.model      default nmt_nfkc normalizer
     bytefb.model    nmt_nfkc + byte_fallback
     ident.model     identity normalizer, user-defined symbols, remove_extra_whitespaces=false
3. Writes spm_encode's ids for every test line (`<model>.ids`, one line of ids per test line).
4. Writes bytefb.tokenizer.json: the same model in Hugging Face tokenizer.json form (Unigram,
   Precompiled charsmap), built here from the protobuf, so the JSON loader is tested too.
"""
import base64
import json
import os
import random
import struct
import subprocess
import sys
import tempfile

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), '..', 'fixtures', 'wan', 't5')

R = random.Random(20261124)

SYL = ['ka', 'to', 'ri', 'men', 'sul', 'an', 'the', 'ing', 'pro', 'ver', 'da', 'lo', 'qu', 'est',
       'ion', 'str', 'ea', 'ou', 'ph', 'sch', 'ck', 'z', 'x', 'ble', 'ful']
ACC = list('éèêëàâäáãåçñøœæßüúùûïíìîóòôöõÿýčšžřęłśźżąőű') + ['e\u0301', 'a\u0308', 'n\u0303']
GREEK = list('αβγδεζηθικλμνξοπρστυφχψωΑΒΓΔΩάέήίόύώ')
CYR = list('абвгдежзийклмнопрстуфхцчшщъыьэюяАБВГДЖЗИЙ')
CJK_COMMON = list('的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样现分将外但身些与高意进把法此实回二理美点月明其种声全工己话儿者向情部正名定女问力机给等几很业最间新什打便位因重被走电四第门相次东政海口使教西再平真听世气信北少关并内加化由却代军产入先山五太水万市眼体别处总才场师书比住员九笑性通目华报立马命张活难神数件安表原车白应路期叫死常提感金何更反合放做系计或司利受光王果亲界及今京务制解各任至清物台象记边共风战干接它许八特觉望直服毛林题建南度统色字请交爱让认算论百吃义科怎元社术结六功指思非流每青管夫连远资队跟带花快条院变联言权往展该领传近留红治决周保达办运武半候七必城父强步完革深区即求品士转量空甚众技轻程告江语英基派满式李息写呢识极令黄德收脸钱党倒未持取设始版双历越史商千片容研像找友孩站广改议形委早房音火际则首单据导影失拿网香似斯专石若兵弟谁校读志飞观争究包组造落视济喜离虽坐集编宝谈府拉黑且随格尽剑讲布杀微怕母调局根曾准团段终乐切级克精哪官示冷域读')
CJK_RARE = list('龘靐齉爩鱻麤灥厵巂嫑嘦龖䲜𠀀𠀁𪚥')
KANA = list('あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわをんアイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワヲンー')
HALF_KANA = list('ｱｲｳｴｵｶｷｸｹｺﾞﾟ')
HANGUL = list('가나다라마바사아자차카타파하한국어대학교서울사랑합니다')
HANGUL_JAMO = ['\u1100\u1161', '\u1112\u1161\u11ab']  # decomposed: NFKC composes them
ARABIC = list('مرحبابالعالمكيفحالك') + ['\u064e', '\u0650']
DEVA = ['न', 'म', 'स', '्', 'त', 'े', 'ह', 'ि', 'ं', 'द', 'ी', 'क', 'ा']
THAI = list('สวัสดีครับภาษาไทย')
EMOJI = ['😀', '😂', '🥰', '👍', '👍🏽', '👨\u200d👩\u200d👧', '🇫🇷', '🇯🇵', '❤️', '✨', '🔥', '🚀', '🎉',
         '🙏🏿', '🏳️\u200d🌈', '🧑\u200d💻', '☕', '⚽', '🌍']
PUNCT = list('.,;:!?()[]{}"\'-_/\\@#$%^&*+=<>|~`') + ['...', '--', '—', '–', '“', '”', '‘', '’', '«', '»',
                                                     '、', '。', '，', '！', '？', '：', '（', '）', '…', '•', '€', '£', '¥', '©', '®', '™', '°', '±', '×', '÷']
NFKC = ['ﬁ', 'ﬂ', '²', '³', '½', '¼', 'Ⅻ', 'ⅳ', '①', '⑩', 'Ａ', 'Ｂ', 'ｚ', '０', '９', '㎏', '㍿', '™',
        'ℌ', 'ℕ', '𝐀', '𝒜', 'ﾊﾞ', '\u00a0', '\u2002', '\u2003', '\u3000', '\u200b', '\ufeff', 'Å', 'K', 'µ', 'ſ']
SPACES = [' ', '  ', '   ', '\t', ' \t ', '\u00a0', '\u3000', '\u2003', '\u2009', '      ', '\u200b', '\u0085', '\u2028']
RARE = ['\U0001F9FF', '\U00010348', '\u2603', '\U0001F47D', '\u0F3A', '\u16A0', '\u2C00', '\uA000', '\uE000',
        '\U000F0000', '\u1D00', '\U0001D11E', '\u0950', '\u0E3F', '\u20BF', '\uFFFD']


def word():
    return ''.join(R.choice(SYL) for _ in range(R.randint(1, 4)))


def token(rare_ok):
    k = R.random()
    if k < 0.40:
        w = word()
        r = R.random()
        if r < 0.1:
            w = w.capitalize()
        elif r < 0.13:
            w = w.upper()
        return w
    if k < 0.47:
        return word()[:2] + R.choice(ACC) + word()[:3]
    if k < 0.52:
        return ''.join(R.choice(GREEK if R.random() < 0.5 else CYR) for _ in range(R.randint(2, 8)))
    if k < 0.60:
        pool = CJK_COMMON + (CJK_RARE if rare_ok and R.random() < 0.2 else [])
        return ''.join(R.choice(pool) for _ in range(R.randint(1, 12)))
    if k < 0.64:
        return ''.join(R.choice(KANA + (HALF_KANA if rare_ok else [])) for _ in range(R.randint(2, 8)))
    if k < 0.67:
        s = ''.join(R.choice(HANGUL) for _ in range(R.randint(2, 5)))
        return s + (R.choice(HANGUL_JAMO) if rare_ok and R.random() < 0.3 else '')
    if k < 0.69:
        return ''.join(R.choice(ARABIC) for _ in range(R.randint(3, 8)))
    if k < 0.71:
        return ''.join(R.choice(DEVA) for _ in range(R.randint(3, 8)))
    if k < 0.72:
        return ''.join(R.choice(THAI) for _ in range(R.randint(3, 8)))
    if k < 0.78:
        return R.choice(EMOJI)
    if k < 0.88:
        return R.choice(PUNCT)
    if k < 0.92:
        return str(R.randint(0, 10 ** R.randint(1, 9)))
    if k < 0.96:
        return R.choice(NFKC) if rare_ok else word()
    return R.choice(RARE) if rare_ok else R.choice(EMOJI)


def line(rare_ok, n):
    parts = []
    for _ in range(n):
        parts.append(token(rare_ok))
        r = R.random()
        if r < 0.75:
            parts.append(' ')
        elif r < 0.85 and rare_ok:
            parts.append(R.choice(SPACES))
        # else glue tokens together
    s = ''.join(parts)
    if rare_ok:
        r = R.random()
        if r < 0.08:
            s = R.choice(SPACES) + s
        elif r < 0.16:
            s = s + R.choice(SPACES)
    return s.replace('\n', ' ').replace('\r', ' ')


def train_corpus():
    return [line(False, R.randint(3, 40)) for _ in range(12000)]


def test_lines():
    out = []
    fixed = ['', ' ', '   ', '\t\t', 'Hello world', 'hello  world', ' leading', 'trailing ', 'a',
             'A cat, sitting on a mat; the cat sat.', 'ﬁﬂ ²³ ①②③ ＡＢＣ ０１２',
             '東京は日本の首都です。', '北京欢迎你！', '안녕하세요', 'Привет, мир!', 'Γειά σου κόσμε',
             'مرحبا بالعالم', 'नमस्ते', 'สวัสดีครับ', '👨\u200d👩\u200d👧 family 🇫🇷🇯🇵 ❤️',
             'e\u0301 vs é', 'ｱｲｳｴｵ ﾊﾞ', '\u3000全角\u3000スペース\u3000', 'x' * 3000, 'word ' * 600,
             '🤖' * 200, '\U0001F9FF\U0001F9FF\U00010348 unk run', 'ı İ ß ẞ ǅ Ǆ', 'tab\tseparated\tvalues',
             '\u200b\u200bzero width\u200b', 'A' + ' ' * 100 + 'B', '\ue000\ue001 private use',
             'ﷺ ﷽ long ligature', '…', '....', '????!!!!', '$$$ 100% @home #tag <html> &amp;']
    out.extend(fixed)
    while len(out) < 1150:
        k = R.random()
        if k < 0.02:
            n = R.randint(200, 1200)  # very long lines
        elif k < 0.3:
            n = R.randint(1, 3)
        else:
            n = R.randint(3, 30)
        out.append(line(True, n))
    return out


def write_lines(path, lines, extra_bytes=()):
    with open(path, 'wb') as f:
        for s in lines:
            f.write(s.encode('utf-8') + b'\n')
        for b in extra_bytes:
            f.write(b + b'\n')


# invalid UTF-8 lines: lone continuation, truncated sequences, overlong, surrogate, > U+10FFFF
BAD = [b'bad \xff byte', b'\xc3 truncated', b'tail \xe6\x97', b'\xed\xa0\x80 surrogate',
       b'overlong \xc0\xaf', b'\xf4\x90\x80\x80 too big', b'\x80\x80\x80', b'ok \xe2\x96\x81 sym']

MODELS = [
    ('nfkc', ['--byte_fallback=false']),
    ('bytefb', ['--byte_fallback=true']),
    ('ident', ['--normalization_rule_name=identity', '--remove_extra_whitespaces=false',
               '--user_defined_symbols=<sep>,[IMG],@@,東京']),
]


def varint(b, i):
    x = s = 0
    while True:
        c = b[i]
        i += 1
        x |= (c & 0x7f) << s
        s += 7
        if not c & 0x80:
            return x, i


def fields(b):
    i = 0
    while i < len(b):
        key, i = varint(b, i)
        f, wt = key >> 3, key & 7
        if wt == 0:
            v, i = varint(b, i)
        elif wt == 1:
            v, i = b[i:i + 8], i + 8
        elif wt == 5:
            v, i = b[i:i + 4], i + 4
        elif wt == 2:
            n, i = varint(b, i)
            v, i = b[i:i + n], i + n
        else:
            raise ValueError('wire type %d' % wt)
        yield f, wt, v


def to_tokenizer_json(model_path, out_path):
    data = open(model_path, 'rb').read()
    vocab, unk_id, byte_fb, charsmap, types = [], None, False, b'', []
    for f, wt, v in fields(data):
        if f == 1:
            piece, score, typ = '', 0.0, 1
            for g, _, x in fields(v):
                if g == 1:
                    piece = x.decode('utf-8')
                elif g == 2:
                    score = struct.unpack('<f', x)[0]
                elif g == 3:
                    typ = x
            if typ == 2:
                unk_id = len(vocab)
            vocab.append([piece, score])
            types.append(typ)
        elif f == 2:
            for g, _, x in fields(v):
                if g == 35:
                    byte_fb = bool(x)
        elif f == 3:
            for g, _, x in fields(v):
                if g == 2:
                    charsmap = x
    added = [{'id': i, 'content': vocab[i][0], 'single_word': False, 'lstrip': False, 'rstrip': False,
              'normalized': False, 'special': True} for i, t in enumerate(types) if t in (2, 3)]
    doc = {
        'version': '1.0', 'truncation': None, 'padding': None, 'added_tokens': added,
        'normalizer': {'type': 'Sequence', 'normalizers': [
            {'type': 'Precompiled', 'precompiled_charsmap': base64.b64encode(charsmap).decode()},
            {'type': 'Replace', 'pattern': {'Regex': ' {2,}'}, 'content': ' '}]},
        'pre_tokenizer': {'type': 'Metaspace', 'replacement': '\u2581', 'prepend_scheme': 'always',
                          'split': True},
        'post_processor': {'type': 'TemplateProcessing',
                           'single': [{'Sequence': {'id': 'A', 'type_id': 0}},
                                      {'SpecialToken': {'id': '</s>', 'type_id': 0}}]},
        'decoder': {'type': 'Metaspace', 'replacement': '\u2581', 'prepend_scheme': 'always', 'split': True},
        'model': {'type': 'Unigram', 'unk_id': unk_id, 'vocab': vocab, 'byte_fallback': byte_fb},
    }
    with open(out_path, 'w', encoding='utf-8') as f:
        json.dump(doc, f, ensure_ascii=False, indent=None)


def main():
    os.makedirs(OUT, exist_ok=True)
    corpus = train_corpus()
    tests = test_lines()
    write_lines(os.path.join(OUT, 'tok_lines.txt'), tests, BAD)
    with tempfile.TemporaryDirectory() as tmp:
        cpath = os.path.join(tmp, 'corpus.txt')
        write_lines(cpath, corpus)
        for name, extra in MODELS:
            prefix = os.path.join(tmp, name)
            cmd = ['spm_train', '--input=' + cpath, '--model_prefix=' + prefix, '--model_type=unigram',
                   '--vocab_size=2500', '--pad_id=0', '--eos_id=1', '--unk_id=2', '--bos_id=-1',
                   '--num_threads=2', '--minloglevel=2'] + extra
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            os.replace(prefix + '.model', os.path.join(OUT, name + '.model'))
            with open(os.path.join(OUT, 'tok_lines.txt'), 'rb') as fin, \
                    open(os.path.join(OUT, name + '.ids'), 'wb') as fout:
                subprocess.run(['spm_encode', '--model=' + os.path.join(OUT, name + '.model'),
                                '--output_format=id'], stdin=fin, stdout=fout, check=True)
    to_tokenizer_json(os.path.join(OUT, 'bytefb.model'), os.path.join(OUT, 'bytefb.tokenizer.json'))
    print('wrote fixtures to', OUT, '(%d test lines)' % (len(tests) + len(BAD)))


main()
